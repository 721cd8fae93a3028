// Every role assignment, least privilege, each at the narrowest scope Azure
// RBAC allows (docs/infra.md). Built-in role
// definition GUIDs, as listed in Azure's built-in roles:
var role = {
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
  blobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor
  blobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1' // Storage Blob Data Reader
  blobDelegator: 'db58b8e5-c6ad-4a2a-8342-4190687cbf4a' // Storage Blob Delegator
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39' // Azure Service Bus Data Sender
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0' // Azure Service Bus Data Receiver
  batchJobSubmitter: '48e5e92e-a480-4e71-aa9c-2778f4c13781' // Azure Batch Job Submitter
  metricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher
}

@description('Data storage account name.')
param dataStorageName string

@description('Host storage account name (AzureWebJobsStorage and the deployment package).')
param hostStorageName string

@description('Container names of the data account.')
param inputContainerName string
param outputContainerName string
param statusContainerName string
param indexContainerName string
param logsContainerName string
param quarantineContainerName string
param deadLetterContainerName string

@description('Service Bus namespace, queue and completion-events topic.')
param serviceBusNamespaceName string
param queueName string
param eventsTopicName string

@description('Batch account name.')
param batchAccountName string

@description('Application Insights component name.')
param appInsightsName string

@description('Principal (object) ids of the managed identities.')
param funcPrincipalId string
param poolPrincipalId string
param eventGridPrincipalId string

@description('identity: tasks reach blobs with the pool identity; sas: with per-blob user delegation SAS URLs the function signs.')
@allowed([
  'identity'
  'sas'
])
param taskBlobAccess string

@description('Object id of a person to let upload inputs and read results (empty: none).')
param operatorPrincipalId string = ''

var useSas = taskBlobAccess == 'sas'

// Blob data, one container at a time.
//   Function app: OnBlobCreated/Dispatch read the input's properties; Sweep
//   deletes the input (If-Match eTag) or copies it to quarantine, writes
//   status records, checks the output and reads the stderr tail in logs. In
//   sas mode it also signs write SAS URLs for output and logs, and a user
//   delegation SAS cannot grant more than its signer holds.
//   Pool identity (identity mode): read its input, write output and logs.
//   Event Grid: write dead-lettered events.
var funcGrants = [
  {
    container: inputContainerName
    role: role.blobDataContributor
    reason: 'ffpipe function: read input properties, delete or quarantine processed inputs'
  }
  {
    container: quarantineContainerName
    role: role.blobDataContributor
    reason: 'ffpipe function: move failed inputs here'
  }
  {
    container: statusContainerName
    role: role.blobDataContributor
    reason: 'ffpipe function: write and read status records'
  }
  {
    container: indexContainerName
    role: role.blobDataContributor
    reason: 'ffpipe function: keep the records\' index (counts per day) that Status reads'
  }
  {
    container: outputContainerName
    role: useSas ? role.blobDataContributor : role.blobDataReader
    reason: useSas ? 'ffpipe function: verify outputs, sign output write SAS' : 'ffpipe function: verify outputs'
  }
  {
    container: logsContainerName
    role: useSas ? role.blobDataContributor : role.blobDataReader
    reason: useSas ? 'ffpipe function: read stderr tails, sign log write SAS' : 'ffpipe function: read stderr tails'
  }
]

var poolGrants = useSas ? [] : [
  {
    container: inputContainerName
    role: role.blobDataReader
    reason: 'ffpipe pool: download the input resource file'
  }
  {
    container: outputContainerName
    role: role.blobDataContributor
    reason: 'ffpipe pool: upload the output file'
  }
  {
    container: logsContainerName
    role: role.blobDataContributor
    reason: 'ffpipe pool: upload task stdout/stderr'
  }
]

var operatorGrants = empty(operatorPrincipalId) ? [] : [
  {
    container: inputContainerName
    role: role.blobDataContributor
    reason: 'ffpipe operator: upload inputs'
  }
  {
    container: outputContainerName
    role: role.blobDataReader
    reason: 'ffpipe operator: read outputs'
  }
  {
    container: statusContainerName
    role: role.blobDataReader
    reason: 'ffpipe operator: read status records'
  }
  {
    container: logsContainerName
    role: role.blobDataReader
    reason: 'ffpipe operator: read task logs'
  }
  {
    container: quarantineContainerName
    role: role.blobDataReader
    reason: 'ffpipe operator: inspect failed inputs'
  }
]

module funcContainerRoles 'container-role.bicep' = [for (g, i) in funcGrants: {
  name: 'role-func-${i}'
  params: {
    accountName: dataStorageName
    containerName: g.container
    principalId: funcPrincipalId
    roleDefinitionId: g.role
    reason: g.reason
  }
}]

module poolContainerRoles 'container-role.bicep' = [for (g, i) in poolGrants: {
  name: 'role-pool-${i}'
  params: {
    accountName: dataStorageName
    containerName: g.container
    principalId: poolPrincipalId
    roleDefinitionId: g.role
    reason: g.reason
  }
}]

module eventGridContainerRole 'container-role.bicep' = {
  name: 'role-eventgrid-deadletter'
  params: {
    accountName: dataStorageName
    containerName: deadLetterContainerName
    principalId: eventGridPrincipalId
    roleDefinitionId: role.blobDataContributor
    reason: 'ffpipe Event Grid: write dead-lettered events'
  }
}

module operatorContainerRoles 'container-role.bicep' = [for (g, i) in operatorGrants: {
  name: 'role-operator-${i}'
  params: {
    accountName: dataStorageName
    containerName: g.container
    principalId: operatorPrincipalId
    principalType: 'User'
    roleDefinitionId: g.role
    reason: g.reason
  }
}]

resource dataStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataStorageName
}

// The function signs user delegation SAS URLs in both modes: storage.Copy
// (Sweep's Move to quarantine) always reads its source through a read SAS,
// and in sas mode Dispatch signs every task URL. The key comes from Get User
// Delegation Key, whose generateUserDelegationKey action must be granted at
// the storage account (or a wider) scope: the container-scoped data roles
// above include the action but cannot grant it there. Storage Blob Delegator
// holds that action alone and no data access; a SAS it signs still carries
// only what the function holds on the container (docs/infra.md).
resource funcDelegator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(dataStorage.id, funcPrincipalId, role.blobDelegator)
  scope: dataStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.blobDelegator)
    principalId: funcPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ffpipe function: user delegation keys for the SAS URLs of quarantine copies and tasks'
  }
}

// Functions host storage (a separate account, so this account-wide role
// reaches no pipeline data): leases, timers' schedule status, host keys and
// the Flex deployment package are blobs. No blob trigger is used, so no
// queue or table role.
resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource funcHostStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, funcPrincipalId, role.blobDataOwner)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.blobDataOwner)
    principalId: funcPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ffpipe function: Functions host storage (AzureWebJobsStorage) and deployment package'
  }
}

// Service Bus: OnBlobCreated sends, Dispatch receives; both on the queue only.
resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusNamespaceName
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = {
  parent: namespace
  name: queueName
}

resource funcQueueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, funcPrincipalId, role.serviceBusDataSender)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.serviceBusDataSender)
    principalId: funcPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ffpipe function: OnBlobCreated and Sweep enqueue requests'
  }
}

resource funcQueueReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, funcPrincipalId, role.serviceBusDataReceiver)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.serviceBusDataReceiver)
    principalId: funcPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ffpipe function: Dispatch receives requests'
  }
}

// Completion events: Sweep publishes to the topic and nothing else; the
// sender role on the topic alone cannot receive or manage it.
resource eventsTopic 'Microsoft.ServiceBus/namespaces/topics@2024-01-01' existing = {
  parent: namespace
  name: eventsTopicName
}

resource funcEventsSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventsTopic.id, funcPrincipalId, role.serviceBusDataSender)
  scope: eventsTopic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.serviceBusDataSender)
    principalId: funcPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ffpipe function: publish completion events'
  }
}

// Batch: Dispatch adds tasks (and creates the job if missing), Sweep lists,
// reads and deletes tasks. Job Submitter grants jobs/* data actions and
// pools/read, not pool management (the pool is managed here, in Bicep);
// Batch RBAC has no scope narrower than the account.
resource batchAccount 'Microsoft.Batch/batchAccounts@2024-07-01' existing = {
  name: batchAccountName
}

resource funcBatch 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(batchAccount.id, funcPrincipalId, role.batchJobSubmitter)
  scope: batchAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.batchJobSubmitter)
    principalId: funcPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ffpipe function: submit, list and delete tasks of the ffpipe job'
  }
}

resource operatorBatch 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(batchAccount.id, operatorPrincipalId, role.batchJobSubmitter)
  scope: batchAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.batchJobSubmitter)
    principalId: operatorPrincipalId
    principalType: 'User'
    description: 'ffpipe operator: inspect the job and its tasks'
  }
}

// Application Insights with local auth disabled accepts telemetry only from
// principals holding Monitoring Metrics Publisher on the component.
resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource funcTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, funcPrincipalId, role.metricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.metricsPublisher)
    principalId: funcPrincipalId
    principalType: 'ServicePrincipal'
    description: 'ffpipe function: send telemetry with Entra ID'
  }
}
