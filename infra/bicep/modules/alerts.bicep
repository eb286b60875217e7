// Mesh Orchestrator alerts on Azure Monitor: an action group, the Prometheus rules of infra/monitoring/ as Azure
// Monitor managed Prometheus rule groups, and metric alerts on what only Azure sees (Event Grid dead-letters and
// drops, the admission queue's dead-letter queue).
//
// The Prometheus rules are NOT copied here: loadYamlContent reads infra/monitoring/slo.rules.yml and mesh.rules.yml
// when the template is compiled, so Azure evaluates exactly the rules promtool tests (test/unit/monitoringRules.test.ts
// checks that every rules file is loaded here). Severity: page -> Azure severity 1 (Error), ticket -> 3 (Informational).
//
// Prerequisite: managed Prometheus collecting the cluster's metrics into the Azure Monitor workspace, e.g.
//   az aks update -g <rg> -n <cluster> --enable-azure-monitor-metrics --azure-monitor-workspace-resource-id <id>
// and the app's pods scraped (the chart's pod annotations, enabled in the ama-metrics-settings-configmap's
// pod-annotation-based-scraping podannotationnamespaceregex). docs/operations.md#runbook lists what each alert means.

@description('Azure region of the Azure Monitor workspace and the rule groups.')
param location string

@description('Short prefix for resource names.')
param namePrefix string

@description('Tags applied to every resource.')
param tags object = {}

@description('E-mail address the action group notifies (an on-call alias or a Teams channel address).')
param alertEmailAddress string

@description('Resource id of an existing Azure Monitor workspace (Microsoft.Monitor/accounts) that managed Prometheus writes to. Empty: one is created here.')
param azureMonitorWorkspaceId string = ''

@description('Resource id of the AKS cluster whose metrics the rules evaluate (limits the rules to that cluster). Empty: every cluster in the workspace.')
param aksClusterResourceId string = ''

@description('Prefix that turns the rules\' runbook_url (docs/operations.md#...) into a link, e.g. https://github.com/<org>/<repo>/blob/main/.')
param runbookBaseUrl string = ''

@description('Resource id of the Event Grid topic of lifecycle events (metric alerts on dead-lettered and dropped events). Empty: none.')
param eventGridTopicId string = ''

@description('Resource id of the Service Bus namespace holding the admission queue (metric alert on its dead-letter queue). Empty: none.')
param serviceBusNamespaceId string = ''

@description('Name of the admission queue in that namespace.')
param admissionQueueName string = 'mesh-admission'

var prefix = toLower(namePrefix)
var suffix = uniqueString(resourceGroup().id, prefix)
var createWorkspace = empty(azureMonitorWorkspaceId)
var sloRules = loadYamlContent('../../monitoring/slo.rules.yml')
var meshRules = loadYamlContent('../../monitoring/mesh.rules.yml')
var ruleGroups = concat(sloRules.groups, meshRules.groups)
var azureSeverity = {
  page: 1
  ticket: 3
}

resource workspace 'Microsoft.Monitor/accounts@2023-04-03' = if (createWorkspace) {
  name: 'amw-${prefix}-${suffix}'
  location: location
  tags: tags
}

var workspaceId = createWorkspace ? workspace.id : azureMonitorWorkspaceId
var scopes = empty(aksClusterResourceId) ? [workspaceId] : [workspaceId, aksClusterResourceId]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${prefix}-${suffix}'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: take('${prefix}alerts', 12)
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmailAddress
        useCommonAlertSchema: true
      }
    ]
  }
}

// One Azure rule group per Prometheus group; a rule is a recording rule when it has `record`, an alert otherwise.
resource prometheusRuleGroups 'Microsoft.AlertsManagement/prometheusRuleGroups@2023-03-01' = [
  for group in ruleGroups: {
    name: '${prefix}-${group.name}'
    location: location
    tags: tags
    properties: {
      description: 'Mesh Orchestrator ${group.name} (infra/monitoring/)'
      enabled: true
      clusterName: empty(aksClusterResourceId) ? null : last(split(aksClusterResourceId, '/'))
      interval: 'PT${toUpper(group.interval)}'
      scopes: scopes
      rules: [
        for rule in group.rules: contains(rule, 'record')
          ? {
              record: any(rule).record
              expression: rule.expr
            }
          : {
              alert: any(rule).alert
              expression: rule.expr
              for: 'PT${toUpper(any(rule).for)}'
              labels: any(rule).labels
              annotations: union(any(rule).annotations, {
                runbook_url: '${runbookBaseUrl}${any(rule).annotations.runbook_url}'
              })
              severity: azureSeverity[any(rule).labels.severity]
              enabled: true
              resolveConfiguration: {
                autoResolved: true
                timeToResolve: 'PT10M'
              }
              actions: [
                {
                  actionGroupId: actionGroup.id
                }
              ]
            }
      ]
    }
  }
]

// Event Grid's own delivery to subscribers (the notification function): what it gave up on is dead-lettered (with a
// dead-letter destination) or dropped (without one). The app's /metrics cannot see either. One alert per metric: the
// criteria of one metric alert must all hold together.
var eventGridLossMetrics = [
  {
    alert: 'MeshEventsDeadLettered'
    metric: 'DeadLetteredCount'
  }
  {
    alert: 'MeshEventsDropped'
    metric: 'DroppedEventCount'
  }
]

resource eventGridLoss 'Microsoft.Insights/metricAlerts@2018-03-01' = [
  for loss in eventGridLossMetrics: if (!empty(eventGridTopicId)) {
    name: '${prefix}-${loss.alert}'
    location: 'global'
    tags: tags
    properties: {
      description: 'Event Grid ${loss.metric} > 0: lifecycle events did not reach a subscriber (runbook: ${runbookBaseUrl}docs/operations.md#mesheventsdeadlettered).'
      severity: 2
      enabled: true
      scopes: [
        eventGridTopicId
      ]
      evaluationFrequency: 'PT5M'
      windowSize: 'PT15M'
      criteria: {
        'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
        allOf: [
          {
            criterionType: 'StaticThresholdCriterion'
            name: loss.metric
            metricNamespace: 'Microsoft.EventGrid/topics'
            metricName: loss.metric
            operator: 'GreaterThan'
            threshold: 0
            timeAggregation: 'Total'
          }
        ]
      }
      autoMitigate: true
      actions: [
        {
          actionGroupId: actionGroup.id
        }
      ]
    }
  }
]

// A submission whose admission message was delivered maxDeliveryCount times lands in the dead-letter queue and its
// run stays Queued: someone must resubmit it (main.bicep, admissionQueue).
resource admissionDeadLetters 'Microsoft.Insights/metricAlerts@2018-03-01' = if (!empty(serviceBusNamespaceId)) {
  name: '${prefix}-MeshAdmissionDeadLettered'
  location: 'global'
  tags: tags
  properties: {
    description: 'Admission messages in the dead-letter queue of ${admissionQueueName} (runbook: ${runbookBaseUrl}docs/operations.md#meshadmissiondeadlettered).'
    severity: 2
    enabled: true
    scopes: [
      serviceBusNamespaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'DeadLettered'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          metricName: 'DeadletteredMessages'
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                admissionQueueName
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Maximum'
        }
      ]
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

output actionGroupId string = actionGroup.id
output azureMonitorWorkspaceId string = workspaceId
output prometheusRuleGroupNames array = [for (group, i) in ruleGroups: prometheusRuleGroups[i].name]
