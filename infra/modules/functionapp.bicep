// Function App on the Flex Consumption plan (FC1, Linux) running the Go
// custom handler: runtime "custom" version "1.0" lives in functionAppConfig,
// not in FUNCTIONS_WORKER_RUNTIME (Flex rejects that setting), and the
// version string must be exactly the catalog's "1.0"
// (docs/infra.md).
//
// The deployment package is kept in a blob container of the host storage
// account, which the app reads with its user-assigned identity: no
// WEBSITE_RUN_FROM_PACKAGE SAS URL, no storage key.

@description('Azure region.')
param location string

@description('Function App name (globally unique host name).')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Resource id of the app\'s user-assigned identity.')
param identityId string

@description('Blob endpoint of the host storage account (https://<acct>.blob.core.windows.net/).')
param hostStorageBlobEndpoint string

@description('Container of the host storage account that holds the deployment package.')
param deploymentContainerName string

@description('Every app setting, as name: value (built in main.bicep).')
param appSettings object

@description('Instance memory: 512, 2048 or 4096 MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound of instances the plan scales out to (40-1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

param tags object = {}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: [for s in items(appSettings): {
        name: s.key
        value: s.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
}

// Basic (publishing-credential) authentication off for SCM and FTP: func
// publishes with the caller's Entra ID token. The type definition has no
// location, but the resource provider answers "The parameter location has
// an invalid value" without one (docs/infra.md): Bicep warns (BCP187) and
// deploys it.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  location: location
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  location: location
  properties: {
    allow: false
  }
}

output name string = app.name
output id string = app.id
output defaultHostName string = app.properties.defaultHostName
