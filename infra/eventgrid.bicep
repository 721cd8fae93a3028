// Event Grid: a system topic on the data storage account and the subscription
// that delivers BlobCreated events for uploads to the input container to the
// OnBlobCreated function. Deployed by deploy.sh AFTER the code is published:
// an AzureFunction endpoint must name a function that exists, and the Event
// Grid extension's system key (which Event Grid fetches itself for this
// endpoint type) only exists once the host has loaded the extension.
//
// Filters (docs/infra.md): BlobCreated only, subject under the input
// container, ending with one of the allowed suffixes (an advanced
// StringEndsWith filter on the subject, which takes several values and
// compares case-insensitively, so .MP4 matches too), and only the APIs that
// mean "fully committed".
// Failed deliveries are retried (30 attempts over at most 24 h) and then
// dead-lettered to a container, written with a user-assigned identity.

targetScope = 'resourceGroup'

@description('Azure region of the storage account.')
param location string = resourceGroup().location

@description('Function App name (main.bicep output functionAppName).')
param functionAppName string

@description('Function that receives the events.')
param functionName string = 'OnBlobCreated'

@description('Data storage account name (main.bicep output dataStorageName).')
param dataStorageName string

@description('Container watched for uploads (FFPIPE_INPUT_CONTAINER).')
param inputContainerName string = 'input'

@description('Suffixes uploads must end with (FFPIPE_ALLOWED_SUFFIXES split at commas), compared case-insensitively; empty: no suffix filter (OnBlobCreated still checks). At most 21: a subscription takes 25 advanced filter values and data.api uses 4.')
@maxLength(21)
param subjectSuffixes array = [
  '.mp4'
]

@description('Container for events that could not be delivered (main.bicep output deadLetterContainerName).')
param deadLetterContainerName string = 'deadletter'

@description('User-assigned identity that writes dead letters (main.bicep output eventGridIdentityName).')
param eventGridIdentityName string

@description('Delivery attempts before an event is dead-lettered (1-30).')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30

@description('Minutes an event is retried before it is dead-lettered (1-1440).')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

param tags object = {
  app: 'ffpipe'
}

var apiFilter = {
  operatorType: 'StringIn'
  key: 'data.api'
  values: [
    'PutBlob'
    'PutBlockList'
    'CopyBlob'
    'FlushWithClose'
  ]
}

var suffixFilter = {
  operatorType: 'StringEndsWith'
  key: 'subject'
  values: subjectSuffixes
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataStorageName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource eventGridIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: eventGridIdentityName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: '${dataStorageName}-events'
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${eventGridIdentity.id}': {}
    }
  }
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'ffpipe-input-to-${toLower(functionName)}'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionApp.id}/functions/${functionName}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${inputContainerName}/blobs/'
      isSubjectCaseSensitive: false
      advancedFilters: empty(subjectSuffixes) ? [
        apiFilter
      ] : [
        apiFilter
        suffixFilter
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'UserAssigned'
        userAssignedIdentity: eventGridIdentity.id
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output systemTopicName string = topic.name
output subscriptionName string = subscription.name
