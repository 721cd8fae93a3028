// Log Analytics workspace + workspace-based Application Insights with local
// (instrumentation-key) authentication disabled: telemetry is accepted only
// when the sender authenticates with Entra ID (the Function App's managed
// identity, APPLICATIONINSIGHTS_AUTHENTICATION_STRING, role Monitoring
// Metrics Publisher in modules/roles.bicep).

@description('Azure region.')
param location string

@description('Name prefix.')
param prefix string

@description('Suffix that makes names unique.')
param token string

@description('Days Log Analytics keeps data (30 is the free retention).')
param retentionInDays int = 30

param tags object = {}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${prefix}-log-${token}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${prefix}-appi-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // Entra ID-only ingestion: the connection string below then identifies
    // the resource but cannot be used to send telemetry on its own.
    DisableLocalAuth: true
  }
}

output appInsightsName string = appInsights.name
// Not a secret: it names the ingestion endpoint and resource; with
// DisableLocalAuth the sender must also present an Entra ID token.
output appInsightsConnectionString string = appInsights.properties.ConnectionString
