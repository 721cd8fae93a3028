// Batch account (Batch-managed pool allocation, Entra ID authentication only:
// shared-key calls are rejected) and the persistent ffmpeg pool.
//
// The pool (docs/infra.md, platform facts):
//   - Canonical Ubuntu 22.04 with nodeAgentSkuId "batch.node.ubuntu 22.04"
//     (verified pair in the supported-images list; Ubuntu 22.04 support ends
//     2027-06-30, move to canonical/ubuntu-24_04-lts/server + 24.04 then);
//   - a start task that installs ffmpeg as a pool-scoped admin auto-user and
//     must succeed before tasks are scheduled;
//   - taskSlotsPerNode tasks at once per node, packed so scale-in is easy;
//   - an autoscale formula driven by pending tasks that scales to zero and
//     uses Spot/low-priority nodes, never killing a running task on scale-in
//     (the same formula as internal/batch, so `ffpipe pool ensure` agrees);
//   - simplified node communication (the classic mode retired 2026-03-31);
//   - the pool's user-assigned identity, which tasks name in
//     resourceFiles/outputFiles identityReference to reach blob storage
//     (FFPIPE_NODE_IDENTITY).
// Batch jobs are data-plane objects, not ARM resources: the long-lived job
// (FFPIPE_BATCH_JOB, onAllTasksComplete noaction) is created by the code when
// it is missing.

@description('Azure region.')
param location string

@description('Batch account name: 3-24 lower-case letters and digits.')
@minLength(3)
@maxLength(24)
param accountName string

@description('Pool id (FFPIPE_BATCH_POOL).')
param poolId string

@description('Resource id of the pool\'s user-assigned identity.')
param poolIdentityId string

@description('VM size of a node. Avoid the A/D/Dv2 families Batch is retiring (docs/infra.md).')
param vmSize string = 'Standard_D2s_v5'

@description('Task slots per node, at most min(4 x vCPUs, 256); a task takes its requiredSlots: 1 for audio, 2 for video and HLS profiles. Default 2 per vCPU of the default vmSize (internal/batch DefaultTaskSlotsPerNode): a second task per vCPU downloads while the first encodes (docs/performance.md, node phase). Lower it for CPU-heavy custom profiles.')
@minValue(2)
@maxValue(256)
param taskSlotsPerNode int = 4

@description('Most nodes the autoscale formula asks for (Spot, plus any dedicated ones).')
@minValue(1)
param maxNodes int = 10

@description('Task slots the autoscale formula counts per pending task: the largest requiredSlots of the profiles in use (2 with the built-in video and HLS profiles, 1 for audio only). Batch\'s $PendingTasks counts tasks, not slots.')
@minValue(1)
@maxValue(256)
param slotsPerTask int = 2

@description('How many of the nodes, while there is work, are dedicated rather than Spot (0: Spot only; the pool still scales to zero when idle).')
@minValue(0)
param dedicatedNodes int = 0

@description('How often the autoscale formula is evaluated (at least PT5M).')
param autoScaleEvaluationInterval string = 'PT5M'

param tags object = {}

resource account 'Microsoft.Batch/batchAccounts@2024-07-01' = {
  name: accountName
  location: location
  tags: tags
  properties: {
    poolAllocationMode: 'BatchService'
    // Entra ID only: no shared-key (account key) access to the data plane.
    allowedAuthenticationModes: [
      'AAD'
    ]
    publicNetworkAccess: 'Enabled'
  }
}

// Queue-driven formula (docs/infra.md; not an official sample),
// identical to internal/batch AutoScaleFormula so that `ffpipe pool ensure`
// finds nothing to change (infra_test.go checks): enough nodes for the
// pending (active + running) tasks, Spot except for up to dedicatedNodes,
// capped at maxNodes, zero when nothing was pending for five minutes, and
// nodes leave only when their tasks finish.
var autoScaleFormulaTemplate = '''
// ffpipe: queue-driven autoscale, spot first, zero nodes when idle.
maxNodes = {maxNodes};
dedicatedNodes = {dedicatedNodes};
slots = max(1, $TaskSlotsPerNode);
// $PendingTasks counts tasks, not slots: each is counted as the largest requiredSlots in use (capped to a node)
perTask = min(slots, max(1, {slotsPerTask}));
// demand = active + running tasks: the last sample, or the 5-minute peak when samples are complete
pct = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 5);
last = max(0, $PendingTasks.GetSample(1));
recent = pct < 70 ? last : max(last, max($PendingTasks.GetSample(TimeInterval_Minute * 5)));
// nodes for all pending tasks; (n + slots - 1) / slots rounds up when targets are truncated
wanted = recent > 0 ? max(1, (recent * perTask + slots - 1) / slots) : 0;
total = min(maxNodes, wanted);
dedicated = min(total, dedicatedNodes);
$TargetDedicatedNodes = dedicated;
$TargetLowPriorityNodes = total - dedicated;
$NodeDeallocationOption = taskcompletion;
'''

var autoScaleFormula = replace(replace(replace(autoScaleFormulaTemplate, '{maxNodes}', string(maxNodes)), '{dedicatedNodes}', string(dedicatedNodes)), '{slotsPerTask}', string(slotsPerTask))

// Same as internal/batch StartTaskCommand: skip when ffmpeg is already there
// (restarts), else install it, retrying apt (the boot-time unattended upgrade
// holds the dpkg lock, mirrors fail), then check that it runs. Batch does
// not expand shell variables here.
var startTaskCommand = '/bin/bash -c "set -u; if command -v ffmpeg >/dev/null; then ffmpeg -hide_banner -version; exit 0; fi; for attempt in 1 2 3 4 5; do if apt-get -o DPkg::Lock::Timeout=300 -q update && apt-get -o DPkg::Lock::Timeout=300 -q install -y --no-install-recommends ffmpeg; then ffmpeg -hide_banner -version && exit 0; fi; sleep 20; done; exit 1"'

resource pool 'Microsoft.Batch/batchAccounts/pools@2024-07-01' = {
  parent: account
  name: poolId
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${poolIdentityId}': {}
    }
  }
  properties: {
    vmSize: vmSize
    deploymentConfiguration: {
      virtualMachineConfiguration: {
        imageReference: {
          publisher: 'canonical'
          offer: '0001-com-ubuntu-server-jammy'
          sku: '22_04-lts'
          version: 'latest'
        }
        nodeAgentSkuId: 'batch.node.ubuntu 22.04'
      }
    }
    taskSlotsPerNode: taskSlotsPerNode
    taskSchedulingPolicy: {
      nodeFillType: 'Pack'
    }
    targetNodeCommunicationMode: 'Simplified'
    scaleSettings: {
      autoScale: {
        formula: autoScaleFormula
        evaluationInterval: autoScaleEvaluationInterval
      }
    }
    startTask: {
      commandLine: startTaskCommand
      environmentSettings: [
        {
          name: 'DEBIAN_FRONTEND'
          value: 'noninteractive'
        }
      ]
      userIdentity: {
        autoUser: {
          scope: 'Pool'
          elevationLevel: 'Admin'
        }
      }
      maxTaskRetryCount: 3
      waitForSuccess: true
    }
  }
}

output accountName string = account.name
output accountId string = account.id
// https://<account>.<region>.batch.azure.com, the data-plane endpoint (FFPIPE_BATCH_ENDPOINT).
output accountEndpoint string = 'https://${account.properties.accountEndpoint}'
output poolName string = pool.name
