// ffpipe on Azure, with no keys anywhere: every service accepts Entra ID only
// (storage shared-key access off, Service Bus local auth off, Batch AAD-only,
// Application Insights local auth off) and every client is a user-assigned
// managed identity with least-privilege roles (modules/roles.bicep).
//
// Deploy with ./infra/deploy.sh (docs/deploy.md). This template creates
// everything but the Event Grid subscription, which needs the published
// OnBlobCreated function and is deployed afterwards from eventgrid.bicep.
//
// The names of containers, the queue, the pool and the job must agree with
// the code's defaults (internal/config) and local.settings.example.json, and
// the Function App must set exactly the settings internal/config reads:
// infra/infra_test.go checks both.

targetScope = 'resourceGroup'

@description('Short lower-case prefix (letters and digits, 3-11) for every resource name.')
@minLength(3)
@maxLength(11)
param prefix string

@description('Azure region (must offer Flex Consumption).')
param location string = resourceGroup().location

@description('Object id of the person deploying, given rights to upload inputs and read results (empty: none). deploy.sh passes the signed-in user.')
param operatorPrincipalId string = ''

@description('identity: Batch tasks reach blobs with the pool\'s managed identity (FFPIPE_NODE_IDENTITY); sas: with user delegation SAS URLs signed by the function.')
@allowed([
  'identity'
  'sas'
])
param taskBlobAccess string = 'identity'

// Names shared with the code (FFPIPE_* defaults).
param inputContainerName string = 'input'
param outputContainerName string = 'output'
param statusContainerName string = 'status'
param indexContainerName string = 'status-index'
param logsContainerName string = 'logs'
param quarantineContainerName string = 'quarantine'
@description('Infra only: Event Grid writes events it could not deliver here.')
param deadLetterContainerName string = 'deadletter'
param queueName string = 'transcode'
@description('Service Bus topic of completion events (FFPIPE_EVENTS_TOPIC).')
param eventsTopicName string = 'transcode-events'
@description('Infra only: the consumers\' subscription on the events topic.')
param eventsSubscriptionName string = 'all'
param batchPoolId string = 'ffmpeg'
param batchJobId string = 'ffpipe'

// Pipeline behaviour (app settings, same defaults as internal/config).
param allowedSuffixes string = '.mp4'
param maxInputBytes string = '4294967296'
param defaultPreset string = 'mp3'
param outputTemplate string = '{dir}/{stem}.{ext}'
@description('Optional JSON object overriding or adding presets.')
param presets string = ''
@description('Optional JSON object adding or replacing media profiles (docs/profiles.md).')
param profiles string = ''
@description('Optional JSON object from blob-name prefix to profile (docs/profiles.md).')
param routes string = ''
@description('Read an upload\'s ffpipe_profile metadata when the request names no profile.')
param profileMetadata string = 'true'
param taskMaxWallClock string = 'PT30M'
param taskMaxRetries string = '2'
param sasExpiry string = '2h'
param sweepMaxTasks string = '500'
@description('Completed tasks one Sweep run settles at the same time (1-256).')
param sweepParallelism string = '16'
@description('Time one Sweep run keeps settling rounds while they come back full; keep it under the timer period (sweepSchedule) and functionTimeout.')
param sweepBudget string = '30s'
param reconcileAfter string = '15m'
@description('Price of one pool node-hour for the cost estimate of each file: spot=<p>,dedicated=<p> (FFPIPE_NODE_PRICE_PER_HOUR); empty: node time only.')
param nodePricePerHour string = ''
@description('Estimated spend per UTC day after which Dispatch adds no tasks until the next day (FFPIPE_DAILY_BUDGET); 0: none.')
param dailyBudget string = '0'
@description('Peek-lock duration of the request queue (at most PT5M); Dispatch keeps each invocation to half of it (FFPIPE_QUEUE_LOCK_DURATION).')
param queueLockDuration string = 'PT5M'
@description('Sweep\'s 6-field NCRONTAB schedule. Once a minute in Azure (the local stack uses every 10 s).')
param sweepSchedule string = '0 */1 * * * *'
param logLevel string = 'info'

// Capacity and cost.
@description('Batch node VM size. Standard_D2s_v5 (2 vCPUs) with the default taskSlotsPerNode 4 runs four audio tasks or two video tasks at a time; with another size set taskSlotsPerNode to match, e.g. 8 on Standard_D4s_v5 (docs/deploy.md, sizing the pool).')
param poolVmSize string = 'Standard_D2s_v5'
@description('Task slots per node, at most min(4 x the VM size\'s vCPUs, 256). An audio task takes 1 slot; a video or HLS profile takes 2 (its requiredSlots), and a custom profile its "slots", which must not exceed this or its tasks never run. Default 2 per vCPU of the default poolVmSize (4 on Standard_D2s_v5): a second task per vCPU downloads its input while the first encodes (docs/performance.md, node phase). Set 2 x vCPUs for another VM size; lower it (e.g. to the vCPUs) for CPU-heavy custom profiles.')
@minValue(2)
@maxValue(256)
param taskSlotsPerNode int = 4
@description('Most nodes the pool scales out to.')
param poolMaxNodes int = 10
@description('How many of the nodes, while there is work, are dedicated instead of Spot (0: Spot only). Idle pools scale to zero either way.')
param poolDedicatedNodes int = 0

@description('Task slots the pool\'s autoscale formula counts per pending task: the largest requiredSlots of the profiles in use (2 with the built-in video and HLS profiles; 1 for audio-only deployments). See docs/profiles.md.')
@minValue(1)
@maxValue(256)
param poolSlotsPerTask int = 2
@description('Most Function App instances.')
param functionMaximumInstanceCount int = 40
@description('Days before task logs are deleted.')
param logsRetentionDays int = 30
@description('Days before status records are deleted.')
param statusRetentionDays int = 90
@description('Days before dead-lettered events are deleted.')
param deadLetterRetentionDays int = 30

param tags object = {
  app: 'ffpipe'
}

var token = toLower(uniqueString(resourceGroup().id, prefix))
var short = take(token, 8)
var deploymentContainerName = 'app-package'

module identities 'modules/identities.bicep' = {
  name: 'identities'
  params: {
    location: location
    prefix: prefix
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    prefix: prefix
    token: token
    tags: tags
  }
}

// Pipeline data: inputs, outputs, records, logs, quarantine, dead letters.
module dataStorage 'modules/storage.bicep' = {
  name: 'data-storage'
  params: {
    name: '${prefix}data${short}'
    location: location
    tags: tags
    containers: [
      inputContainerName
      outputContainerName
      statusContainerName
      indexContainerName
      logsContainerName
      quarantineContainerName
      deadLetterContainerName
    ]
    expiryRules: [
      {
        name: 'expire-logs'
        prefix: '${logsContainerName}/'
        deleteAfterDays: logsRetentionDays
      }
      {
        name: 'expire-status'
        prefix: '${statusContainerName}/'
        deleteAfterDays: statusRetentionDays
      }
      {
        name: 'expire-deadletter'
        prefix: '${deadLetterContainerName}/'
        deleteAfterDays: deadLetterRetentionDays
      }
    ]
  }
}

// Functions host storage and the deployment package, apart from the data so
// that the host's account-wide role reaches no pipeline data.
module hostStorage 'modules/storage.bicep' = {
  name: 'host-storage'
  params: {
    name: '${prefix}host${short}'
    location: location
    tags: tags
    containers: [
      deploymentContainerName
    ]
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    location: location
    name: '${prefix}-sb-${token}'
    queueName: queueName
    lockDuration: queueLockDuration
    eventsTopicName: eventsTopicName
    eventsSubscriptionName: eventsSubscriptionName
    tags: tags
  }
}

module batch 'modules/batch.bicep' = {
  name: 'batch'
  params: {
    location: location
    accountName: '${prefix}batch${short}'
    poolId: batchPoolId
    poolIdentityId: identities.outputs.poolId
    vmSize: poolVmSize
    taskSlotsPerNode: taskSlotsPerNode
    maxNodes: poolMaxNodes
    dedicatedNodes: poolDedicatedNodes
    slotsPerTask: poolSlotsPerTask
    tags: tags
  }
}

// Every app setting of the Function App. The FFPIPE_*, ServiceBusConnection__
// fullyQualifiedNamespace, DataStorage__blobServiceUri, AZURE_CLIENT_ID and
// SweepSchedule entries are exactly what internal/config reads; the rest are
// read by the Functions host itself. Local-only settings (ServiceBusConnection,
// DataStorage, FFPIPE_BATCH_TOKEN) are connection strings or tokens and are
// never set here.
var appSettings = {
  // Functions host storage through the managed identity.
  AzureWebJobsStorage__accountName: hostStorage.outputs.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identities.outputs.funcClientId
  // Service Bus: the trigger and output bindings (host) use all three; the Go
  // code reads the namespace and AZURE_CLIENT_ID.
  ServiceBusConnection__fullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identities.outputs.funcClientId
  // Not a secret key (it identifies the resource); local auth is disabled on
  // the component, so telemetry is accepted only with the Entra ID token
  // named by APPLICATIONINSIGHTS_AUTHENTICATION_STRING.
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=${identities.outputs.funcClientId}'
  // internal/config
  DataStorage__blobServiceUri: dataStorage.outputs.blobEndpoint
  AZURE_CLIENT_ID: identities.outputs.funcClientId
  FFPIPE_BATCH_ENDPOINT: batch.outputs.accountEndpoint
  FFPIPE_BATCH_POOL: batchPoolId
  FFPIPE_BATCH_JOB: batchJobId
  FFPIPE_QUEUE: queueName
  FFPIPE_EVENTS_TOPIC: serviceBus.outputs.eventsTopicName
  FFPIPE_INPUT_CONTAINER: inputContainerName
  FFPIPE_OUTPUT_CONTAINER: outputContainerName
  FFPIPE_STATUS_CONTAINER: statusContainerName
  FFPIPE_INDEX_CONTAINER: indexContainerName
  FFPIPE_RECORD_RETENTION: 'P${statusRetentionDays}D'
  FFPIPE_LOGS_CONTAINER: logsContainerName
  FFPIPE_QUARANTINE_CONTAINER: quarantineContainerName
  FFPIPE_ALLOWED_SUFFIXES: allowedSuffixes
  FFPIPE_MAX_INPUT_BYTES: maxInputBytes
  FFPIPE_DEFAULT_PRESET: defaultPreset
  FFPIPE_OUTPUT_TEMPLATE: outputTemplate
  FFPIPE_PRESETS: presets
  FFPIPE_PROFILES: profiles
  FFPIPE_ROUTES: routes
  FFPIPE_PROFILE_METADATA: profileMetadata
  FFPIPE_TASK_MAX_SLOTS: string(taskSlotsPerNode)
  FFPIPE_TASK_MAX_WALLCLOCK: taskMaxWallClock
  FFPIPE_TASK_MAX_RETRIES: taskMaxRetries
  FFPIPE_SAS_EXPIRY: sasExpiry
  FFPIPE_NODE_IDENTITY: taskBlobAccess == 'identity' ? identities.outputs.poolId : ''
  FFPIPE_SWEEP_MAX_TASKS: sweepMaxTasks
  FFPIPE_SWEEP_PARALLELISM: sweepParallelism
  FFPIPE_SWEEP_BUDGET: sweepBudget
  FFPIPE_RECONCILE_AFTER: reconcileAfter
  FFPIPE_QUEUE_LOCK_DURATION: queueLockDuration
  SweepSchedule: sweepSchedule
  FFPIPE_NODE_PRICE_PER_HOUR: nodePricePerHour
  FFPIPE_DAILY_BUDGET: dailyBudget
  FFPIPE_LOG_FORMAT: 'json'
  FFPIPE_LOG_LEVEL: logLevel
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    name: '${prefix}-func-${token}'
    planName: '${prefix}-plan-${token}'
    identityId: identities.outputs.funcId
    hostStorageBlobEndpoint: hostStorage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    appSettings: appSettings
    maximumInstanceCount: functionMaximumInstanceCount
    tags: tags
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    dataStorageName: dataStorage.outputs.name
    hostStorageName: hostStorage.outputs.name
    inputContainerName: inputContainerName
    outputContainerName: outputContainerName
    statusContainerName: statusContainerName
    indexContainerName: indexContainerName
    logsContainerName: logsContainerName
    quarantineContainerName: quarantineContainerName
    deadLetterContainerName: deadLetterContainerName
    serviceBusNamespaceName: serviceBus.outputs.namespaceName
    queueName: serviceBus.outputs.queueName
    eventsTopicName: serviceBus.outputs.eventsTopicName
    batchAccountName: batch.outputs.accountName
    appInsightsName: monitoring.outputs.appInsightsName
    funcPrincipalId: identities.outputs.funcPrincipalId
    poolPrincipalId: identities.outputs.poolPrincipalId
    eventGridPrincipalId: identities.outputs.eventGridPrincipalId
    taskBlobAccess: taskBlobAccess
    operatorPrincipalId: operatorPrincipalId
  }
}

// deploy.sh reads these for `func azure functionapp publish` and eventgrid.bicep.
output functionAppName string = functionApp.outputs.name
output functionAppHostName string = functionApp.outputs.defaultHostName
output dataStorageName string = dataStorage.outputs.name
output inputContainerName string = inputContainerName
output outputContainerName string = outputContainerName
output statusContainerName string = statusContainerName
output deadLetterContainerName string = deadLetterContainerName
output eventGridIdentityName string = identities.outputs.eventGridName
output batchAccountName string = batch.outputs.accountName
output batchEndpoint string = batch.outputs.accountEndpoint
output batchPoolId string = batch.outputs.poolName
output batchJobId string = batchJobId
output serviceBusNamespace string = serviceBus.outputs.namespaceName
output queueName string = serviceBus.outputs.queueName
output eventsTopicName string = serviceBus.outputs.eventsTopicName
output eventsSubscriptionName string = serviceBus.outputs.eventsSubscriptionName
output appInsightsName string = monitoring.outputs.appInsightsName
