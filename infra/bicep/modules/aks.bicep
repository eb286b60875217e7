// Optional (main.bicep deployCluster=true): the AKS cluster the chart runs on, and a container registry it pulls the
// image from. Skip it when the platform team provides the cluster; docs/operations.md "Prerequisites" lists what an
// existing cluster must have (exactly what this module turns on).
//   - Microsoft Entra Workload ID + OIDC issuer: the pods and KEDA act as the app's user-assigned identity.
//   - The KEDA add-on (workloadAutoScalerProfile.keda): the worker's ScaledObject.
//   - Three availability zones for every node pool: with the chart's zone spread and PDBs, a zone outage leaves
//     pods running in the other two (docs/operations.md "SLO").
//   - Azure CNI overlay with Cilium network policy, so the chart's NetworkPolicy is enforced.
//   - The managed NGINX ingress (app routing add-on, IngressClass webapprouting.kubernetes.azure.com).

@description('Azure region.')
param location string

@description('Name prefix and unique suffix, as main.bicep builds them.')
param prefix string
param suffix string

param tags object

@description('Kubernetes version (a supported AKS minor version, e.g. 1.32). Empty: the AKS default.')
param kubernetesVersion string = ''

@description('VM size of the system and user node pools.')
param nodeVmSize string = 'Standard_D4ds_v5'

@description('Nodes per pool at least (one per zone at least: 3).')
@minValue(3)
param minNodeCount int = 3

@description('Nodes per pool at most (cluster autoscaler).')
param maxNodeCount int = 9

@description('Log Analytics workspace for Container insights.')
param logAnalyticsWorkspaceId string

var zones = [
  '1'
  '2'
  '3'
]

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: take('acr${replace(prefix, '-', '')}${suffix}', 50)
  location: location
  tags: tags
  sku: {
    // Premium: zone redundancy, and geo-replication if a second region is added.
    name: 'Premium'
  }
  properties: {
    adminUserEnabled: false
    zoneRedundancy: 'Enabled'
    anonymousPullEnabled: false
  }
}

resource cluster 'Microsoft.ContainerService/managedClusters@2024-09-01' = {
  name: 'aks-${prefix}-${suffix}'
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  sku: {
    name: 'Base'
    // Standard tier: the financially backed 99.95 % API server SLA with availability zones.
    tier: 'Standard'
  }
  properties: {
    kubernetesVersion: empty(kubernetesVersion) ? null : kubernetesVersion
    dnsPrefix: 'aks-${prefix}-${suffix}'
    enableRBAC: true
    disableLocalAccounts: true
    aadProfile: {
      managed: true
      enableAzureRBAC: true
    }
    oidcIssuerProfile: {
      enabled: true
    }
    securityProfile: {
      workloadIdentity: {
        enabled: true
      }
    }
    workloadAutoScalerProfile: {
      keda: {
        enabled: true
      }
    }
    ingressProfile: {
      webAppRouting: {
        enabled: true
      }
    }
    networkProfile: {
      networkPlugin: 'azure'
      networkPluginMode: 'overlay'
      networkDataplane: 'cilium'
      networkPolicy: 'cilium'
    }
    autoUpgradeProfile: {
      upgradeChannel: 'patch'
      nodeOSUpgradeChannel: 'NodeImage'
    }
    addonProfiles: {
      omsagent: {
        enabled: true
        config: {
          logAnalyticsWorkspaceResourceID: logAnalyticsWorkspaceId
        }
      }
    }
    agentPoolProfiles: [
      {
        name: 'system'
        mode: 'System'
        vmSize: nodeVmSize
        osType: 'Linux'
        availabilityZones: zones
        enableAutoScaling: true
        count: minNodeCount
        minCount: minNodeCount
        maxCount: maxNodeCount
        nodeTaints: [
          'CriticalAddonsOnly=true:NoSchedule'
        ]
      }
      {
        name: 'apps'
        mode: 'User'
        vmSize: nodeVmSize
        osType: 'Linux'
        availabilityZones: zones
        enableAutoScaling: true
        count: minNodeCount
        minCount: minNodeCount
        maxCount: maxNodeCount
      }
    ]
  }
}

// The kubelet identity pulls images from the registry (no pull secret in the chart).
var acrPullRoleId = '7f951dda-4ed3-4680-a7ca-43fe172d538d'

resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, cluster.id, acrPullRoleId)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRoleId)
    principalId: cluster.properties.identityProfile.kubeletidentity.objectId
    principalType: 'ServicePrincipal'
  }
}

output clusterName string = cluster.name
output oidcIssuerUrl string = cluster.properties.oidcIssuerProfile.issuerURL
output registryName string = registry.name
output registryLoginServer string = registry.properties.loginServer
