// Service Bus namespace (Standard: duplicate detection and topics need
// Standard or Premium) with local (SAS key) authentication disabled, the
// request queue and the completion-events topic (docs/infra.md). The queue:
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

@description('Topic of completion events (FFPIPE_EVENTS_TOPIC): one CloudEvent per file that reaches a final state.')
param eventsTopicName string = 'transcode-events'

@description('Subscription on the events topic for consumers (every event, no filter rule).')
param eventsSubscriptionName string = 'all'

@description('Duplicate detection window of the events topic: an event\'s MessageId is key + state, so a Sweep that publishes again drops out.')
param eventsDuplicateDetectionWindow string = 'P1D'

@description('Time to live of an event waiting in the consumer subscription.')
param eventsMessageTimeToLive string = 'P14D'

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

// Completion events: Sweep publishes each at least once (a lost publish is
// retried on its next run) with MessageId = key + final state, so duplicate
// detection keeps a retry from reaching consumers twice.
resource eventsTopic 'Microsoft.ServiceBus/namespaces/topics@2024-01-01' = {
  parent: namespace
  name: eventsTopicName
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: eventsDuplicateDetectionWindow
    defaultMessageTimeToLive: eventsMessageTimeToLive
    enablePartitioning: false
    maxSizeInMegabytes: 1024
  }
}

// A subscription with no rule of its own gets the $Default rule (1=1):
// every event.
resource eventsSubscription 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2024-01-01' = {
  parent: eventsTopic
  name: eventsSubscriptionName
  properties: {
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    defaultMessageTimeToLive: eventsMessageTimeToLive
    deadLetteringOnMessageExpiration: true
    deadLetteringOnFilterEvaluationExceptions: true
    requiresSession: false
  }
}

output namespaceName string = namespace.name
output queueName string = queue.name
// <ns>.servicebus.windows.net (serviceBusEndpoint is https://<ns>.servicebus.windows.net:443/).
output fullyQualifiedNamespace string = replace(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')
output eventsTopicName string = eventsTopic.name
output eventsSubscriptionName string = eventsSubscription.name
