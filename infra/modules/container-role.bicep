// One role assignment on one blob container: the narrowest scope Azure RBAC
// offers for blob data.

@description('Storage account name.')
param accountName string

@description('Container name.')
param containerName string

@description('Object id of the principal.')
param principalId string

@description('ServicePrincipal for managed identities, User for a person.')
@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
param principalType string = 'ServicePrincipal'

@description('Built-in role definition GUID.')
param roleDefinitionId string

@description('Why the principal needs the role (shown in the portal).')
param reason string

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  name: '${accountName}/default/${containerName}'
}

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(container.id, principalId, roleDefinitionId)
  scope: container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: principalType
    description: reason
  }
}
