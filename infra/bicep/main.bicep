// Mesh Orchestrator: Azure resources for one environment (deploy at resource-group scope).
//   az deployment group create -g <rg> -f infra/bicep/main.bicep -p aksOidcIssuerUrl=<issuer>   (or deployCluster=true)
// Full order (Bicep, image, chart, Bicep again for the Event Grid subscription): docs/operations.md "Deploy".
// The app runs on AKS (infra/helm/mesh-orchestrator) as one user-assigned identity through Microsoft Entra Workload ID.
// Every data-plane connection is identity-based: local auth (keys, SAS, connection strings) is disabled where the
// service allows it, and the identity gets least-privilege data roles below.
//
// Outputs map onto the chart's values (see the Outputs section at the end). Two Key Vault secrets are NOT created here,
// because a template would have to carry the key material: create them once after the first deployment, as someone
// holding "Key Vault Secrets Officer" on the vault (RBAC vault: the app identity can only read secrets). Never put a
// key in a file under version control, in a parameter file, or on a command line (printf below is a shell builtin).
//   - mesh-data-keys (app setting MESH_DATA_KEYS_SECRET): the key ring of field encryption at rest (AES-256-GCM key
//     encryption keys), JSON {"current":"<kid>","keys":{"<kid>":"<base64 of 32 bytes>"}}. A kid is 1-40 characters of
//     [A-Za-z0-9._-]; the app's own format is dk-<yyyymmdd>-<8 hex>:
//       kid="dk-$(date -u +%Y%m%d)-$(openssl rand -hex 4)"
//       (umask 077; printf '{"current":"%s","keys":{"%s":"%s"}}' "$kid" "$kid" "$(openssl rand -base64 32)" > ring.json)
//       az keyvault secret set --vault-name <keyVaultName> --name mesh-data-keys --file ring.json --content-type application/json
//       shred -u ring.json
//     Rotation: add a new kid to "keys", point "current" at it and set a new version of the secret. Never remove an
//     old key while anything sealed under it is kept (up to retentionDays after a run ends); instances pick up the new
//     version within KEY_VAULT_CACHE_TTL_SECONDS (default 300 s). Losing the ring loses every sealed value.
//   - mesh-link-keys (MESH_LINK_KEYS_SECRET): the approval-link signing keys, {"current": <private ES256 JWK>,
//     "previous"?: <private ES256 JWK>} (adapters/links/joseLinkSigner.ts). Required with the Cosmos DB store.
//   - mesh-audit-keys (MESH_AUDIT_KEYS_SECRET): the audit chain's HMAC-SHA256 keys, the same ring format as
//     mesh-data-keys (the app's own kids are ak-<yyyymmdd>-<8 hex>); create it the same way with --name mesh-audit-keys.
//     Rotation as for mesh-data-keys; never remove a kid while a record keyed with it is kept, or its chain stops
//     verifying. Required with the Cosmos DB store.

targetScope = 'resourceGroup'

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Short prefix for resource names.')
@minLength(2)
@maxLength(8)
param namePrefix string = 'mesh'

// Retention (issue 5, docs/decisions.md #12). Runs, their outputs and audit trail are NOT expired by Cosmos DB TTL: a
// TTL on each audit record counts from when it was written, so a run lasting longer than the period would lose the
// head of its hash chain while still running. The app's retention timer (purgeExpired) removes whole runs that ended
// more than MESH_RETENTION_DAYS ago; those containers keep TTL on with no default (-1). Nothing in Azure enforces
// this value: it is only passed on to the chart (output helmAppSettings).
@description('Days an ended run (projection, outputs, audit trail, durable history) is kept before the app purges it: app setting MESH_RETENTION_DAYS. SPEC: 90 days by default.')
@minValue(1)
param retentionDays int = 90

// Cosmos DB caps defaultTtl at 2^31 - 1 seconds: 24855 days.
@description('Cosmos DB default TTL, in days, of the containers whose items expire by themselves (links, idempotency, outbox, ratelimits): app setting COSMOS_TTL_DAYS.')
@minValue(1)
@maxValue(24855)
param ttlDays int = 90

@description('Per-container overrides of ttlDays, e.g. { links: 30 } (keys: links, idempotency, outbox, ratelimits; app settings COSMOS_TTL_DAYS_<NAME>, all in output helmAppSettings).')
param ttlDaysByContainer object = {}

@description('Days each run\'s anchored audit head stays immutable (WORM) in the anchor container; at least retentionDays plus the longest a run lasts, so the anchor outlives the trail it protects. Blobs are deleted by lifecycle management after it.')
param anchorImmutabilityDays int = retentionDays + 30

@description('Service Bus queue runs wait in until admitted (app setting MESH_ADMISSION_QUEUE, chart value admission.queueName).')
param admissionQueueName string = 'mesh-admission'

@description('Days Log Analytics keeps logs.')
@minValue(30)
param logRetentionDays int = 30

@description('OIDC issuer URL of the AKS cluster (az aks show --query oidcIssuerProfile.issuerUrl). Empty: no federated credentials.')
param aksOidcIssuerUrl string = ''

@description('Kubernetes namespace the Helm chart is installed into.')
param kubernetesNamespace string = 'mesh'

@description('ServiceAccount the Helm chart creates (the release fullname unless serviceAccount.name is set).')
param kubernetesServiceAccount string = 'mesh-orchestrator'

@description('KEDA operator ServiceAccount as namespace:name. KEDA reads the task hub queues and the admission queue as this same identity (TriggerAuthentication azure-workload).')
param kedaOperatorServiceAccount string = 'keda:keda-operator'

// ---- Durable backend, availability, public entry (issue 12; docs/operations.md) ----------------------------------

@description('Durable Functions storage provider: durableTaskScheduler (default: the managed scheduler, ~1,400 work items/s per worker against Azure Storage\'s ~250) or azureStorage (the task hub in the storage account below). Must equal the chart value durable.backend.')
@allowed([
  'durableTaskScheduler'
  'azureStorage'
])
param durableBackend string = 'durableTaskScheduler'

@description('Durable Task Scheduler SKU: Dedicated (fixed capacity units, zone redundant from 3 units, the production choice) or Consumption (pay per action).')
@allowed([
  'Dedicated'
  'Consumption'
])
param durableSchedulerSku string = 'Dedicated'

@description('Capacity units of a Dedicated scheduler; 3 makes it zone redundant.')
@minValue(1)
param durableSchedulerCapacity int = 3

@description('Durable Task Scheduler task hub name: the chart value durable.hubName.')
param durableTaskHubName string = 'MeshHub'

@description('Cosmos DB replicas spread over the region\'s availability zones (the region must support zones; fixed once the region is added).')
param cosmosZoneRedundant bool = true

@description('Optional second Cosmos DB region (e.g. northeurope). Set: a read replica with service-managed automatic failover, so the store survives the loss of the primary region.')
param cosmosSecondaryLocation string = ''

@description('Autoscale RU/s ceiling shared by the database\'s containers when the account is provisioned (a second region is set).')
@minValue(1000)
param cosmosMaxThroughput int = 4000

@description('Public host name of the API (the chart value ingress.host). Set together with eventGridWebhookKey, after the chart is installed, to subscribe notifyOnEvent to the topic.')
param publicHost string = ''

@description('The Functions host system key eventgrid_extension (host.systemKey.eventgrid_extension of the host-keys Secret, docs/operations.md "Host keys"): the code of the webhook URL. Empty: no subscription.')
@secure()
param eventGridWebhookKey string = ''

@description('Also subscribe forwardEvents (the generic event webhook; the chart must then list forwardEvents and set MESH_EVENT_WEBHOOK_URL).')
param subscribeForwardEvents bool = false

@description('Create the AKS cluster and container registry (modules/aks.bicep). false: bring your own cluster with the prerequisites of docs/operations.md.')
param deployCluster bool = false

@description('Tags applied to every resource.')
param tags object = {
  app: 'mesh-orchestrator'
}

var prefix = toLower(namePrefix)
var suffix = uniqueString(resourceGroup().id, prefix)
var daySeconds = 24 * 60 * 60
// What the app computes in adapters/cosmos/config.ts: COSMOS_TTL_DAYS_<NAME>, else COSMOS_TTL_DAYS.
var ttlDaysOf = {
  links: contains(ttlDaysByContainer, 'links') ? int(ttlDaysByContainer.links) : ttlDays
  idempotency: contains(ttlDaysByContainer, 'idempotency') ? int(ttlDaysByContainer.idempotency) : ttlDays
  outbox: contains(ttlDaysByContainer, 'outbox') ? int(ttlDaysByContainer.outbox) : ttlDays
  ratelimits: contains(ttlDaysByContainer, 'ratelimits') ? int(ttlDaysByContainer.ratelimits) : ttlDays
}
// TTL on, nothing expires by default: what the retention job purges (runs, outputs, audit, policies, admission).
var neverExpires = -1
// Serverless (pay per request) unless a second region is wanted, which serverless accounts cannot have.
var cosmosServerless = empty(cosmosSecondaryLocation)

// Built-in role definition ids (Azure RBAC).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419'
  eventGridDataSender: 'd5a91429-5739-47e2-a06b-3470a27159e7'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultCryptoUser: '12338af0-0e69-4776-bea7-57ae8d297424'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  durableTaskDataContributor: '0ad04412-c4d5-4796-b79c-f76d14c8d402'
}
// Cosmos DB data-plane role (not Azure RBAC): "Cosmos DB Built-in Data Contributor".
var cosmosDataContributorRoleId = '00000000-0000-0000-0000-000000000002'

// ---- Identity ---------------------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${prefix}-${suffix}'
  location: location
  tags: tags
}

// The cluster's OIDC issuer: the optional AKS module's, else the aksOidcIssuerUrl of an existing cluster.
var oidcIssuerUrl = deployCluster ? aks!.outputs.oidcIssuerUrl : aksOidcIssuerUrl

// Federated credentials on one identity must be written one at a time, hence the dependsOn chain.
resource appFederation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = if (deployCluster || !empty(aksOidcIssuerUrl)) {
  parent: identity
  name: 'aks-${kubernetesNamespace}-${kubernetesServiceAccount}'
  properties: {
    issuer: oidcIssuerUrl
    subject: 'system:serviceaccount:${kubernetesNamespace}:${kubernetesServiceAccount}'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

resource kedaFederation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = if (deployCluster || !empty(aksOidcIssuerUrl)) {
  parent: identity
  name: 'aks-keda-operator'
  properties: {
    issuer: oidcIssuerUrl
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

// ---- Audit chain anchors: each run's chain head, outside the audit store (adapters/audit/blobAnchors.ts) ------------
// An account of its own, so the task hub's Blob Data Owner role does not reach it. One append blob per run in a
// container under a time-based immutability (WORM) policy that allows protected append writes: the app appends each
// new head, and nobody (the app identity included) can overwrite or delete a blob for anchorImmutabilityDays. The
// policy is created unlocked (a template cannot lock it); lock it once after the first deployment, which makes it
// irrevocable and only extendable:
//   az storage container immutability-policy lock --account-name <anchorStorageAccountName> -c audit-anchors \
//     --if-match "$(az storage container immutability-policy show --account-name <anchorStorageAccountName> \
//     -c audit-anchors --query etag -o tsv)"

resource anchorStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: take('sta${replace(prefix, '-', '')}${suffix}', 24)
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
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
  }
}

resource anchorBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: anchorStorage
  name: 'default'
}

resource anchorContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: anchorBlobService
  name: 'audit-anchors'
  properties: {
    publicAccess: 'None'
  }
}

resource anchorImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = {
  parent: anchorContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: anchorImmutabilityDays
    // Append blocks may be added to a protected append blob; nothing written may change or go.
    allowProtectedAppendWrites: true
  }
}

// After the immutability period the anchors of long-purged runs may go (the _retention chain keeps what was purged).
resource anchorLifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: anchorStorage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'expire-anchors'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: ['appendBlob']
              prefixMatch: ['audit-anchors/runs/']
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: anchorImmutabilityDays + 1
                }
              }
            }
          }
        }
      ]
    }
  }
}

// ---- Cosmos DB: the store of every port (MESH_STORE=cosmos) ---------------------------------------------------

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
    // Zone-redundant replicas in the primary region and, optionally, a second region with automatic failover
    // (Session consistency; writes stay single-region, so the app's _etag concurrency is unchanged).
    locations: concat(
      [
        {
          locationName: location
          failoverPriority: 0
          isZoneRedundant: cosmosZoneRedundant
        }
      ],
      empty(cosmosSecondaryLocation)
        ? []
        : [
            {
              locationName: cosmosSecondaryLocation
              failoverPriority: 1
              isZoneRedundant: cosmosZoneRedundant
            }
          ]
    )
    enableAutomaticFailover: !empty(cosmosSecondaryLocation)
    // Serverless accounts cannot be geo-replicated, so a second region means provisioned throughput (autoscale,
    // shared by the database's containers: cosmosDb below). The capacity mode is fixed at creation: adding a second
    // region to an existing serverless account means a new account and a data migration (docs/operations.md).
    capabilities: cosmosServerless
      ? [
          {
            name: 'EnableServerless'
          }
        ]
      : []
    // Entra ID only (COSMOS_ENDPOINT without COSMOS_KEY + workload identity); no primary keys. The database and every
    // container are created here, not by the app: Entra data-plane roles cannot create or change them. The app checks
    // what it finds at startup (adapters/cosmos/cosmosContext.ts): a missing container, a different partition key or
    // a missing unique key is an error; a different TTL or missing composite indexes a warning.
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
    options: cosmosServerless
      ? {}
      : {
          autoscaleSettings: {
            maxThroughput: cosmosMaxThroughput
          }
        }
  }
}

// The containers below mirror containerDefinitions() in adapters/cosmos/cosmosContext.ts EXACTLY (names, partition
// keys, defaultTtl, unique keys, indexing): change both together. Every indexing policy indexes everything except the
// bulky fields no query filters on (a write's RU charge grows with its indexed paths) and the default /"_etag"/?.
// Partition keys and unique keys are fixed at creation: changing one means a new container and a data migration.
//
// | container     | partition key | defaultTtl                       |
// |---------------|---------------|----------------------------------|
// | runs          | /id           | -1 (retention job)               |
// | outputs       | /runId        | -1 (retention job)               |
// | audit         | /runId        | -1 (retention job), unique key /eventId |
// | policies      | /id           | -1                               |
// | admission     | /id           | -1 (one semaphore document)      |
// | links         | /id           | ttlDays (links)                  |
// | idempotency   | /id           | ttlDays (idempotency)            |
// | outbox        | /id           | ttlDays (outbox)                 |
// | ratelimits    | /id           | ttlDays (ratelimits), item ttl   |

// One document per run (optimistic concurrency by _etag). The composite indexes serve the two two-field ORDER BYs:
// the run list (_createdAt desc, id desc) and the retention scan (_updatedAt asc, id asc).
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
      defaultTtl: neverExpires
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/"_etag"/?'
          }
          {
            path: '/input/*'
          }
          {
            path: '/output/*'
          }
          {
            path: '/stages/*'
          }
          {
            path: '/checkpoints/*'
          }
          {
            path: '/nextAction/*'
          }
        ]
        compositeIndexes: [
          [
            {
              path: '/_createdAt'
              order: 'descending'
            }
            {
              path: '/id'
              order: 'descending'
            }
          ]
          [
            {
              path: '/_updatedAt'
              order: 'ascending'
            }
            {
              path: '/id'
              order: 'ascending'
            }
          ]
        ]
      }
    }
  }
}

// Stage outputs, one logical partition per run (purged with it).
resource outputsContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: cosmosDb
  name: 'outputs'
  properties: {
    resource: {
      id: 'outputs'
      partitionKey: {
        paths: [
          '/runId'
        ]
        kind: 'Hash'
        version: 2
      }
      defaultTtl: neverExpires
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/"_etag"/?'
          }
          {
            path: '/value/*'
          }
        ]
      }
    }
  }
}

// Append-only, hash-chained per run; one partition per run keeps a run's chain in one logical partition. No default
// TTL (see retentionDays): the retention job removes a run's whole chain once the run ended. The unique key on
// /eventId (per logical partition, i.e. per run) guards append's idempotency under concurrency.
// UPGRADE NOTE: an environment deployed with the earlier template has an `audit` container without this unique key
// (and with a default TTL). A unique key cannot be added in place, so this deployment fails on that container (and
// the app refuses it): copy the trails out, delete the container, deploy, copy them back (every record keeps its
// eventId, so no two collide within a run).
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
      defaultTtl: neverExpires
      uniqueKeyPolicy: {
        uniqueKeys: [
          {
            paths: [
              '/eventId'
            ]
          }
        ]
      }
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/"_etag"/?'
          }
          {
            path: '/details/*'
          }
        ]
      }
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
      defaultTtl: neverExpires
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/"_etag"/?'
          }
          {
            path: '/policy/*'
          }
        ]
      }
    }
  }
}

// The admission semaphore (MESH_RUN_CAPACITY slots): one _etag-guarded document that must never expire.
resource admissionContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: cosmosDb
  name: 'admission'
  properties: {
    resource: {
      id: 'admission'
      partitionKey: {
        paths: [
          '/id'
        ]
        kind: 'Hash'
        version: 2
      }
      defaultTtl: neverExpires
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/"_etag"/?'
          }
        ]
      }
    }
  }
}

// Signed approval links' single-use records (by jti).
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
      defaultTtl: ttlDaysOf.links * daySeconds
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/"_etag"/?'
          }
        ]
      }
    }
  }
}

// Idempotency-Key records (id = sha256 of creator and key).
resource idempotencyContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: cosmosDb
  name: 'idempotency'
  properties: {
    resource: {
      id: 'idempotency'
      partitionKey: {
        paths: [
          '/id'
        ]
        kind: 'Hash'
        version: 2
      }
      defaultTtl: ttlDaysOf.idempotency * daySeconds
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/"_etag"/?'
          }
        ]
      }
    }
  }
}

// Lifecycle events waiting to be published (id = runId:seq); published ones stay as tombstones for at most this TTL.
resource outboxContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: cosmosDb
  name: 'outbox'
  properties: {
    resource: {
      id: 'outbox'
      partitionKey: {
        paths: [
          '/id'
        ]
        kind: 'Hash'
        version: 2
      }
      defaultTtl: ttlDaysOf.outbox * daySeconds
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/"_etag"/?'
          }
          {
            path: '/record/*'
          }
        ]
      }
    }
  }
}

// Per-user and per-team rate windows (one-minute fixed windows); each item also carries its own short `ttl`.
resource ratelimitsContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: cosmosDb
  name: 'ratelimits'
  properties: {
    resource: {
      id: 'ratelimits'
      partitionKey: {
        paths: [
          '/id'
        ]
        kind: 'Hash'
        version: 2
      }
      defaultTtl: ttlDaysOf.ratelimits * daySeconds
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/"_etag"/?'
          }
        ]
      }
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
  // Writes undeliverable events to the dead-letter container (the storage account takes no keys).
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource storageBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// Events Event Grid gave up on (retries exhausted or TTL passed): inspect, then replay by hand (docs/operations.md).
resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: storageBlobService
  name: 'eventgrid-deadletter'
  properties: {
    publicAccess: 'None'
  }
}

resource topicDeadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, eventTopic.id, roles.storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: eventTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// The topic's subscribers: the Functions host's Event Grid webhook on the -http pods, reached through the Ingress.
//   https://<publicHost>/runtime/webhooks/eventgrid?functionName=<name>&code=<eventgrid_extension system key>
// The host answers Event Grid's CloudEvents validation handshake itself, so the chart must be running (and the key
// Secret seeded) before this is deployed: deploy once without publicHost, install the chart, deploy again with it.
// The key is the same on every pod (AzureWebJobsSecretStorageType=kubernetes, one Secret), so any pod accepts.
var eventSubscribers = concat(
  [
    {
      name: 'notify-on-event'
      functionName: 'notifyOnEvent'
      // domain/notify.ts NOTIFIED_EVENTS: the events the notification fan-out acts on; others never leave the topic.
      eventTypes: [
        'mesh.checkpoint.opened'
        'mesh.checkpoint.escalated'
        'mesh.checkpoint.expired'
        'mesh.pipeline.failed'
        'mesh.checkpoint.decided'
        'mesh.checkpoint.info_provided'
      ]
    }
  ],
  subscribeForwardEvents
    ? [
        {
          name: 'forward-events'
          functionName: 'forwardEvents'
          // Every lifecycle event goes to the external webhook.
          eventTypes: []
        }
      ]
    : []
)

resource eventSubscriptions 'Microsoft.EventGrid/topics/eventSubscriptions@2025-02-15' = [
  for sub in eventSubscribers: if (!empty(publicHost) && !empty(eventGridWebhookKey)) {
    parent: eventTopic
    name: sub.name
    properties: {
      eventDeliverySchema: 'CloudEventSchemaV1_0'
      destination: {
        endpointType: 'WebHook'
        properties: {
          endpointUrl: 'https://${publicHost}/runtime/webhooks/eventgrid?functionName=${sub.functionName}&code=${eventGridWebhookKey}'
          // One event per request: a throw redelivers only that event (the handlers are idempotent per event id).
          maxEventsPerBatch: 1
          preferredBatchSizeInKilobytes: 64
        }
      }
      filter: empty(sub.eventTypes)
        ? {}
        : {
            includedEventTypes: sub.eventTypes
          }
      // Event Grid retries with exponential backoff for up to a day; after that the event is dead-lettered.
      retryPolicy: {
        maxDeliveryAttempts: 30
        eventTimeToLiveInMinutes: 1440
      }
      deadLetterWithResourceIdentity: {
        identity: {
          type: 'SystemAssigned'
        }
        deadLetterDestination: {
          endpointType: 'StorageBlob'
          properties: {
            resourceId: storage.id
            blobContainerName: deadLetterContainer.name
          }
        }
      }
    }
    dependsOn: [
      topicDeadLetterWriter
    ]
  }
]

// ---- Durable Task Scheduler (durableBackend = durableTaskScheduler) -----------------------------------------------

resource durableScheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = if (durableBackend == 'durableTaskScheduler') {
  name: 'dts-${prefix}-${suffix}'
  location: location
  tags: tags
  properties: {
    sku: union(
      {
        name: durableSchedulerSku
      },
      durableSchedulerSku == 'Dedicated'
        ? {
            capacity: durableSchedulerCapacity
          }
        : {}
    )
    // The pods reach it over the internet with Entra ID tokens; an empty list would refuse every caller.
    ipAllowlist: [
      '0.0.0.0/0'
    ]
  }
}

resource durableTaskHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' = if (durableBackend == 'durableTaskScheduler') {
  parent: durableScheduler
  name: durableTaskHubName
}

// The app identity runs orchestrations, activities and entities and manages instances (start, raise, purge).
resource durableTaskContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (durableBackend == 'durableTaskScheduler') {
  name: guid(resourceGroup().id, 'dts', identity.id, roles.durableTaskDataContributor)
  scope: durableScheduler
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.durableTaskDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---- AKS and registry (optional) ----------------------------------------------------------------------------------

module aks 'modules/aks.bicep' = if (deployCluster) {
  name: 'aks'
  params: {
    location: location
    prefix: prefix
    suffix: suffix
    tags: tags
    logAnalyticsWorkspaceId: logAnalytics.id
  }
}

// ---- Service Bus: the admission queue ------------------------------------------------------------------------------

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

// Every submitted run is sent here (MESH_ADMISSION_QUEUE) and admitted by the Service Bus-triggered admitRun while
// fewer than MESH_RUN_CAPACITY runs execute (docs/decisions.md #10). With no slot free within MESH_ADMISSION_WAIT_MS
// (20 s) the handler throws, the host abandons the message and it is delivered again from its place in the queue
// (host.json serviceBus.maxConcurrentCalls 1 keeps one instance's order). Hence:
//   - maxDeliveryCount 2000 (the largest Service Bus accepts): every abandon counts a delivery. At one delivery per
//     ~20 s a message survives ~11 hours of full capacity before it is dead-lettered; its run then stays Queued until
//     someone resubmits it from the dead-letter queue. Watch the DLQ.
//   - lockDuration PT1M: longer than one admission attempt (20 s wait + start); the host renews it anyway.
//   - duplicate detection over 10 minutes: the message id is the run id, so a retried submission is enqueued once.
//   - no sessions, no partitioning (both fixed at creation): a partitioned queue spreads messages over brokers and
//     loses the order the admitter relies on.
// This replaces the earlier `run-requests` queue, which no code used. Incremental deployments leave that queue in
// place: delete it by hand (az servicebus queue delete --namespace-name <ns> -g <rg> -n run-requests).
resource admissionQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: serviceBus
  name: admissionQueueName
  properties: {
    lockDuration: 'PT1M'
    maxDeliveryCount: 2000
    deadLetteringOnMessageExpiration: true
    defaultMessageTimeToLive: 'P14D'
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    requiresSession: false
    enablePartitioning: false
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

// Create and append anchor blobs (WORM refuses overwrite and delete whatever the role allows).
resource anchorBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(anchorStorage.id, identity.id, roles.storageBlobDataContributor)
  scope: anchorStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

var serviceBusRoleIds = [
  roles.serviceBusDataSender // the -http pods enqueue submitted runs
  roles.serviceBusDataReceiver // the admitRun trigger on the -worker pods
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

// KEDA's azure-servicebus scaler reads the queue's message count through the Service Bus administration API
// (GetQueueRuntimeProperties), which needs the Manage right: with Entra ID that is "Azure Service Bus Data Owner"
// (Sender and Receiver are not enough; the KEDA docs only say "Manage" for SAS policies). KEDA authenticates as this
// same identity (TriggerAuthentication azure-workload, federated credential kedaFederation), so the role is scoped
// to the admission queue alone rather than the namespace. To keep Manage away from the app's pods, give KEDA its own
// identity (a second user-assigned identity, its own federated credential and TriggerAuthentication identityId).
resource kedaServiceBusDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(admissionQueue.id, identity.id, roles.serviceBusDataOwner)
  scope: admissionQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

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
  roles.keyVaultSecretsUser // mesh-data-keys, mesh-link-keys (see the header) and channel secrets (SMTP, Teams, Slack, webhook signing)
  roles.keyVaultCryptoUser // Key Vault keys: not used by the current app (links are signed with the mesh-link-keys secret)
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

// ---- Outputs: the values the Helm chart needs (azure.*, admission.*, appSettings.*) -------------------------------
// identityClientId -> azure.clientId, tenantId -> azure.tenantId, storageAccountName -> azure.storageAccountName,
// cosmosEndpoint -> azure.cosmosEndpoint, serviceBusFullyQualifiedNamespace -> azure.serviceBusNamespace,
// admissionQueueName -> admission.queueName, helmAppSettings -> merged into appSettings.

output identityClientId string = identity.properties.clientId
output identityPrincipalId string = identity.properties.principalId
output tenantId string = subscription().tenantId
output storageAccountName string = storage.name
output anchorStorageAccountName string = anchorStorage.name
output cosmosEndpoint string = cosmos.properties.documentEndpoint
output cosmosDatabaseName string = cosmosDb.name
output eventGridTopicEndpoint string = eventTopic.properties.endpoint
output serviceBusFullyQualifiedNamespace string = replace(replace(serviceBus.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')
output serviceBusNamespaceName string = serviceBus.name
output admissionQueueName string = admissionQueue.name
output keyVaultUri string = keyVault.properties.vaultUri
output appInsightsConnectionString string = appInsights.properties.ConnectionString
output logAnalyticsWorkspaceId string = logAnalytics.id
output meshRetentionDays int = retentionDays
output cosmosTtlDays object = ttlDaysOf
// The app settings this deployment decides, to merge into the chart's appSettings (strings, as the ConfigMap holds
// them). Every COSMOS_TTL_DAYS_<NAME> is spelled out so the app's defaultTtl equals what the containers above have;
// a difference only logs a warning at startup (the identity may not change a container), but is still a mismatch.
output durableBackend string = durableBackend
output durableSchedulerEndpoint string = durableBackend == 'durableTaskScheduler' ? durableScheduler!.properties.endpoint : ''
output durableTaskHubName string = durableBackend == 'durableTaskScheduler' ? durableTaskHub!.name : ''
output eventGridDeadLetterContainer string = deadLetterContainer.name
output aksClusterName string = deployCluster ? aks!.outputs.clusterName : ''
output aksOidcIssuerUrl string = oidcIssuerUrl
output registryLoginServer string = deployCluster ? aks!.outputs.registryLoginServer : ''
output helmAppSettings object = {
  COSMOS_DATABASE: cosmosDb.name
  COSMOS_TTL_DAYS: string(ttlDays)
  COSMOS_TTL_DAYS_LINKS: string(ttlDaysOf.links)
  COSMOS_TTL_DAYS_IDEMPOTENCY: string(ttlDaysOf.idempotency)
  COSMOS_TTL_DAYS_OUTBOX: string(ttlDaysOf.outbox)
  COSMOS_TTL_DAYS_RATELIMITS: string(ttlDaysOf.ratelimits)
  MESH_RETENTION_DAYS: string(retentionDays)
  KEY_VAULT_URL: keyVault.properties.vaultUri
  MESH_AUDIT_ANCHOR_CONTAINER_URL: '${anchorStorage.properties.primaryEndpoints.blob}${anchorContainer.name}'
  EVENTGRID_ENDPOINT: eventTopic.properties.endpoint
}

// ---- Alerts: Azure Monitor managed Prometheus rules (infra/monitoring/) and an action group ---------------------
// modules/alerts.bicep loads infra/monitoring/*.rules.yml as they are, so Azure evaluates the rules promtool tests.
// Skipped while alertEmailAddress is empty. Prerequisite: managed Prometheus on the cluster (see the module's header).

@description('E-mail address alerts go to (action group). Empty: no alerts are deployed.')
param alertEmailAddress string = ''

@description('Resource id of an existing Azure Monitor workspace for managed Prometheus. Empty: the alerts module creates one.')
param azureMonitorWorkspaceId string = ''

@description('Resource id of the AKS cluster the Prometheus rules are limited to. Empty: every cluster in the workspace.')
param aksClusterResourceId string = ''

@description('Prefix that makes the alerts\' runbook_url (docs/operations.md#...) a link, e.g. https://github.com/<org>/<repo>/blob/main/.')
param runbookBaseUrl string = ''

module alerts 'modules/alerts.bicep' = if (!empty(alertEmailAddress)) {
  name: 'mesh-alerts'
  params: {
    location: location
    namePrefix: namePrefix
    tags: tags
    alertEmailAddress: alertEmailAddress
    azureMonitorWorkspaceId: azureMonitorWorkspaceId
    aksClusterResourceId: aksClusterResourceId
    runbookBaseUrl: runbookBaseUrl
    eventGridTopicId: eventTopic.id
    serviceBusNamespaceId: serviceBus.id
    admissionQueueName: admissionQueue.name
  }
}
