// Batch account (Batch-managed pool allocation, Entra ID authentication only:
// shared-key calls are rejected) and the persistent ffmpeg pool.
//
// The pool (azure-batch reference §3.5, §4, §6):
//   - Canonical Ubuntu 22.04 with nodeAgentSkuId "batch.node.ubuntu 22.04"
//     (verified pair in the supported-images list; Ubuntu 22.04 support ends
//     2027-06-30, move to canonical/ubuntu-24_04-lts/server + 24.04 then);
//   - a start task that installs ffmpeg as a pool-scoped admin auto-user and
//     must succeed before tasks are scheduled;
//   - taskSlotsPerNode tasks at once per node, packed so scale-in is easy;
//   - an autoscale formula driven by pending tasks that scales to zero and
//     uses Spot/low-priority nodes, never killing a running task on scale-in;
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

@description('VM size of a node. Avoid the retired A/D/Dv2 families (azure-batch reference §6).')
param vmSize string = 'Standard_D2s_v5'

@description('Tasks that run at once on one node (at most min(4 x cores, 256)).')
@minValue(1)
param taskSlotsPerNode int = 2

@description('Upper bound of Spot nodes the autoscale formula asks for.')
@minValue(1)
param maxLowPriorityNodes int = 10

@description('Dedicated nodes kept at all times (0 = scale to zero; 1 keeps a warm node and costs money while idle).')
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

// Queue-driven formula from the azure-batch reference §4 (not an official
// sample). $PendingTasks = active + running tasks; demand is the last sample
// or the 5-minute average, whichever is larger, tolerating sample gaps.
var autoScaleFormulaTemplate = '''
maxNodes = {maxNodes};
slots = $TaskSlotsPerNode;
pct = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 5);
last = max(0, $PendingTasks.GetSample(1));
recent = pct < 70 ? last : max(last, avg($PendingTasks.GetSample(TimeInterval_Minute * 5)));
need = (recent + slots - 1) / slots;
$TargetLowPriorityNodes = recent > 0 ? min(maxNodes, max(1, need)) : 0;
$TargetDedicatedNodes = {dedicatedNodes};
$NodeDeallocationOption = taskcompletion;
'''

var autoScaleFormula = replace(replace(autoScaleFormulaTemplate, '{maxNodes}', string(maxLowPriorityNodes)), '{dedicatedNodes}', string(dedicatedNodes))

// apt may wait for the boot-time unattended upgrade to release the dpkg lock.
var startTaskCommand = '/bin/bash -c "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get -o DPkg::Lock::Timeout=600 update; apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends ffmpeg; ffmpeg -hide_banner -version | head -n 1"'

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
