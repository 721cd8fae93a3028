// Service Bus namespace (Standard: duplicate detection needs Standard or
// Premium) with local (SAS key) authentication disabled, and the request
// queue. The queue's settings follow docs/design ARCHITECTURE.md and the
// reliability reference §1:
//   - MessageId = key, so duplicate detection drops re-sent requests (Event
//     Grid retries for up to 24 h, hence a one-day window);
//   - the lock covers a Dispatch batch (host.json maxBatchWaitTime must stay
//     under half of it);
//   - a message that keeps failing is dead-lettered after maxDeliveryCount;
//   - an expired message is dead-lettered, never silently dropped.

@description('Azure region.')
param location string

@description('Namespace name: 6-50 letters, digits and hyphens.')
param name string

@description('Queue of request messages (FFPIPE_QUEUE).')
param queueName string

@description('Peek-lock duration (at most PT5M).')
param lockDuration string = 'PT5M'

@description('Deliveries before a message is dead-lettered.')
param maxDeliveryCount int = 10

@description('Duplicate detection history window (at most P7D).')
param duplicateDetectionWindow string = 'P1D'

@description('Time to live of a request message.')
param messageTimeToLive string = 'P7D'

param tags object = {}

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: queueName
  properties: {
    lockDuration: lockDuration
    maxDeliveryCount: maxDeliveryCount
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    defaultMessageTimeToLive: messageTimeToLive
    deadLetteringOnMessageExpiration: true
    requiresSession: false
    enablePartitioning: false
    maxSizeInMegabytes: 1024
  }
}

output namespaceName string = namespace.name
output queueName string = queue.name
// <ns>.servicebus.windows.net (serviceBusEndpoint is https://<ns>.servicebus.windows.net:443/).
output fullyQualifiedNamespace string = replace(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')
