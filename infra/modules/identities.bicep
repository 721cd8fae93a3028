// User-assigned managed identities. Each principal gets its own identity so
// that its role assignments (modules/roles.bicep) stay narrow:
//   func      the Function App (host storage, data containers, Service Bus queue, Batch, App Insights)
//   pool      the Batch pool's nodes (read input, write output and logs)
//   eventgrid the Event Grid system topic (write dead-lettered events)

@description('Azure region.')
param location string

@description('Name prefix.')
param prefix string

param tags object = {}

resource func 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${prefix}-id-func'
  location: location
  tags: tags
}

resource pool 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${prefix}-id-pool'
  location: location
  tags: tags
}

resource eventgrid 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${prefix}-id-eventgrid'
  location: location
  tags: tags
}

output funcId string = func.id
output funcClientId string = func.properties.clientId
output funcPrincipalId string = func.properties.principalId
output poolId string = pool.id
output poolPrincipalId string = pool.properties.principalId
output eventGridId string = eventgrid.id
output eventGridName string = eventgrid.name
output eventGridPrincipalId string = eventgrid.properties.principalId
