// Mesh Orchestrator: Azure resources for one environment (deploy at resource-group scope).
//   az deployment group create -g <rg> -f infra/bicep/main.bicep -p aksOidcIssuerUrl=<issuer>
// The app runs on AKS (infra/helm/mesh-orchestrator) as one user-assigned identity through Microsoft Entra Workload ID.
// Every data-plane connection is identity-based: local auth (keys, SAS, connection strings) is disabled where the
// service allows it, and the identity gets least-privilege data roles below.

targetScope = 'resourceGroup'

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Short prefix for resource names.')
@minLength(2)
@maxLength(8)
param namePrefix string = 'mesh'

@description('Days audit records are kept (Cosmos DB TTL on the audit container). SPEC: 90 days by default.')
@minValue(1)
param auditRetentionDays int = 90

@description('Days Log Analytics keeps logs.')
@minValue(30)
param logRetentionDays int = 30

@description('OIDC issuer URL of the AKS cluster (az aks show --query oidcIssuerProfile.issuerUrl). Empty: no federated credentials.')
param aksOidcIssuerUrl string = ''

@description('Kubernetes namespace the Helm chart is installed into.')
param kubernetesNamespace string = 'mesh'

@description('ServiceAccount the Helm chart creates (the release fullname unless serviceAccount.name is set).')
param kubernetesServiceAccount string = 'mesh-orchestrator'

@description('KEDA operator ServiceAccount as namespace:name. KEDA reads the task hub queues as this same identity (TriggerAuthentication azure-workload).')
param kedaOperatorServiceAccount string = 'keda:keda-operator'

@description('Tags applied to every resource.')
param tags object = {
  app: 'mesh-orchestrator'
}

var prefix = toLower(namePrefix)
var suffix = uniqueString(resourceGroup().id, prefix)
var auditTtlSeconds = auditRetentionDays * 24 * 60 * 60

// Built-in role definition ids (Azure RBAC).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  eventGridDataSender: 'd5a91429-5739-47e2-a06b-3470a27159e7'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultCryptoUser: '12338af0-0e69-4776-bea7-57ae8d297424'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}
// Cosmos DB data-plane role (not Azure RBAC): "Cosmos DB Built-in Data Contributor".
var cosmosDataContributorRoleId = '00000000-0000-0000-0000-000000000002'

// ---- Identity ---------------------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${prefix}-${suffix}'
  location: location
  tags: tags
}

// Federated credentials on one identity must be written one at a time, hence the dependsOn chain.
resource appFederation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = if (!empty(aksOidcIssuerUrl)) {
  parent: identity
  name: 'aks-${kubernetesNamespace}-${kubernetesServiceAccount}'
  properties: {
    issuer: aksOidcIssuerUrl
    subject: 'system:serviceaccount:${kubernetesNamespace}:${kubernetesServiceAccount}'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

resource kedaFederation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = if (!empty(aksOidcIssuerUrl)) {
  parent: identity
  name: 'aks-keda-operator'
  properties: {
    issuer: aksOidcIssuerUrl
    subject: 'system:serviceaccount:${kedaOperatorServiceAccount}'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
  dependsOn: [
    appFederation
  ]
}

// ---- Observability ----------------------------------------------------------------------------------------------

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${prefix}-${suffix}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${prefix}-${suffix}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    IngestionMode: 'LogAnalytics'
  }
}

// ---- Storage: the Durable Functions task hub (Azure Storage backend) and AzureWebJobsStorage ------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: take('st${replace(prefix, '-', '')}${suffix}', 24)
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    // Identity only (AzureWebJobsStorage__accountName); no account keys or SAS.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
  }
}

// ---- Cosmos DB: run projection, audit trail, policies, signed links -------------------------------------------

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: 'cosmos-${prefix}-${suffix}'
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    capabilities: [
      {
        name: 'EnableServerless'
      }
    ]
    // Entra ID only (COSMOS__accountEndpoint + workload identity); no primary keys. Databases and containers are
    // created here, not by the app: Entra data-plane roles cannot create them.
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
  }
}

resource cosmosDb 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: cosmos
  name: 'mesh'
  properties: {
    resource: {
      id: 'mesh'
    }
  }
}

// One document per run (optimistic concurrency by _etag).
resource runsContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: cosmosDb
  name: 'runs'
  properties: {
    resource: {
      id: 'runs'
      partitionKey: {
        paths: [
          '/id'
        ]
        kind: 'Hash'
        version: 2
      }
    }
  }
}

// Append-only, hash-chained per run; one partition per run keeps a run's chain in one logical partition.
// Retention is the container's default TTL (SPEC: 90 days by default, configurable).
resource auditContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: cosmosDb
  name: 'audit'
  properties: {
    resource: {
      id: 'audit'
      partitionKey: {
        paths: [
          '/runId'
        ]
        kind: 'Hash'
        version: 2
      }
      defaultTtl: auditTtlSeconds
    }
  }
}

// Versioned checkpoint policies.
resource policiesContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: cosmosDb
  name: 'policies'
  properties: {
    resource: {
      id: 'policies'
      partitionKey: {
        paths: [
          '/id'
        ]
        kind: 'Hash'
        version: 2
      }
    }
  }
}

// Signed approval links (single use). TTL is on (-1: no default) so each link document can expire with its own `ttl`.
resource linksContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: cosmosDb
  name: 'links'
  properties: {
    resource: {
      id: 'links'
      partitionKey: {
        paths: [
          '/id'
        ]
        kind: 'Hash'
        version: 2
      }
      defaultTtl: -1
    }
  }
}

resource cosmosDataContributor 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {
  parent: cosmos
  name: guid(cosmos.id, identity.id, cosmosDataContributorRoleId)
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributorRoleId}'
    principalId: identity.properties.principalId
    scope: cosmos.id
  }
}

// ---- Event Grid: lifecycle events as CloudEvents 1.0 --------------------------------------------------------------

resource eventTopic 'Microsoft.EventGrid/topics@2025-02-15' = {
  name: 'egt-${prefix}-${suffix}'
  location: location
  tags: tags
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

// ---- Service Bus: buffered run requests ---------------------------------------------------------------------------

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: 'sb-${prefix}-${suffix}'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

resource runRequestsQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: serviceBus
  name: 'run-requests'
  properties: {
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
    defaultMessageTimeToLive: 'P1D'
    // Retried submissions with the same MessageId (the Idempotency-Key) are dropped by the broker.
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
  }
}

// ---- Key Vault: signing keys and channel secrets (RBAC, no access policies) ---------------------------------------

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: take('kv-${prefix}-${suffix}', 24)
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
  }
}

// ---- Role assignments for the app identity (least privilege, per resource) ----------------------------------------

var storageRoleIds = [
  roles.storageBlobDataOwner // AzureWebJobsStorage (host leases, task hub blobs)
  roles.storageQueueDataContributor // task hub control/work-item queues (host and KEDA scaler)
  roles.storageTableDataContributor // task hub history and instances tables
]

resource storageRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in storageRoleIds: {
    name: guid(storage.id, identity.id, roleId)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: identity.properties.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

var serviceBusRoleIds = [
  roles.serviceBusDataSender
  roles.serviceBusDataReceiver
]

resource serviceBusRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in serviceBusRoleIds: {
    name: guid(serviceBus.id, identity.id, roleId)
    scope: serviceBus
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: identity.properties.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource eventGridSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventTopic.id, identity.id, roles.eventGridDataSender)
  scope: eventTopic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventGridDataSender)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

var keyVaultRoleIds = [
  roles.keyVaultSecretsUser // channel secrets (SMTP, Teams, Slack, webhook signing)
  roles.keyVaultCryptoUser // sign/verify with non-exportable keys (signed links)
]

resource keyVaultRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in keyVaultRoleIds: {
    name: guid(keyVault.id, identity.id, roleId)
    scope: keyVault
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: identity.properties.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Lets the app send telemetry with Entra ID auth if local auth is later disabled on Application Insights.
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---- Outputs: the values the Helm chart needs (azure.*, appSettings.*) --------------------------------------------

output identityClientId string = identity.properties.clientId
output identityPrincipalId string = identity.properties.principalId
output tenantId string = subscription().tenantId
output storageAccountName string = storage.name
output cosmosEndpoint string = cosmos.properties.documentEndpoint
output cosmosDatabaseName string = cosmosDb.name
output eventGridTopicEndpoint string = eventTopic.properties.endpoint
output serviceBusFullyQualifiedNamespace string = replace(replace(serviceBus.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')
output runRequestsQueueName string = runRequestsQueue.name
output keyVaultUri string = keyVault.properties.vaultUri
output appInsightsConnectionString string = appInsights.properties.ConnectionString
output logAnalyticsWorkspaceId string = logAnalytics.id
