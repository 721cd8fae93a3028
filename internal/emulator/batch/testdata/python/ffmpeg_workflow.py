#!/usr/bin/python3
"""Runs the Azure Batch ffmpeg tutorial's workflow against a Batch endpoint
through the Python azure-batch SDK (13.x, as Debian's python3-azure ships
it) and azure-storage-blob 12:

  upload the inputs, pick an image from the supported-images listing (as the
  getting-started sample does), create a pool with a start task, a job, add
  one ffmpeg task per input with add_collection (resource file in, output
  file out), poll until every task completes, download the outputs, then
  delete the job and the pool.

Configuration comes from the environment (see main). The last line on
stdout is one JSON object that the Go test (python_test.go) checks; progress
goes to stderr. Exit status 0 means the workflow ran to the end.
"""

import datetime
import json
import os
import sys
import time

import azure.batch.models as batchmodels
from azure.batch import BatchServiceClient
from azure.batch.batch_auth import SharedKeyCredentials
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import (BlobSasPermissions, BlobServiceClient,
                                ContainerSasPermissions, generate_blob_sas,
                                generate_container_sas)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def setting(name):
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit("missing environment variable " + name)
    return value


def until(what, deadline, check, interval=0.2):
    """Calls check until it returns a true value or the deadline passes."""
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for " + what)
        time.sleep(interval)


def error_code(exc):
    err = getattr(exc, "error", None)
    return getattr(err, "code", None) or type(exc).__name__


class Storage:
    """The tutorial's storage side: containers, uploads with read SAS URLs,
    a write SAS for the output container, downloads."""

    def __init__(self, connection_string):
        self.service = BlobServiceClient.from_connection_string(connection_string)
        self.account = self.service.account_name
        self.key = self.service.credential.account_key
        self.expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)

    def container(self, name):
        try:
            self.service.create_container(name)
        except ResourceExistsError:
            pass
        return self.service.get_container_client(name)

    def upload(self, container, path):
        name = os.path.basename(path)
        blob = self.service.get_blob_client(container, name)
        with open(path, "rb") as data:
            blob.upload_blob(data, overwrite=True)
        sas = generate_blob_sas(self.account, container, name, account_key=self.key,
                                permission=BlobSasPermissions(read=True), expiry=self.expiry)
        return name, blob.url + "?" + sas

    def writable_container_url(self, container):
        sas = generate_container_sas(self.account, container, account_key=self.key,
                                     permission=ContainerSasPermissions(write=True), expiry=self.expiry)
        return "{}?{}".format(self.service.get_container_client(container).url, sas)

    def download_all(self, container, directory):
        names = []
        for blob in self.service.get_container_client(container).list_blobs():
            data = self.service.get_blob_client(container, blob.name).download_blob().readall()
            with open(os.path.join(directory, blob.name), "wb") as out:
                out.write(data)
            names.append(blob.name)
        return sorted(names)


def pick_image(client, offer_hint, sku_prefix):
    """As the getting-started sample's helper: list the verified images and
    take the first Canonical one that matches."""
    options = batchmodels.AccountListSupportedImagesOptions(filter="verificationType eq 'verified'")
    images = list(client.account.list_supported_images(account_list_supported_images_options=options))
    for image in images:
        ref = image.image_reference
        if (ref.publisher.lower() == "canonical" and offer_hint in ref.offer.lower()
                and ref.sku.startswith(sku_prefix)):
            return images, image.node_agent_sku_id, ref
    raise SystemExit("no supported canonical image with offer {} and sku {}".format(offer_hint, sku_prefix))


def create_pool(client, pool_id, agent, ref, nodes):
    """A pool of low-priority nodes whose start task checks for ffmpeg, run
    as the pool's admin auto-user as in the tutorial."""
    start = batchmodels.StartTask(
        command_line='/bin/bash -c "command -v ffmpeg && ffmpeg -hide_banner -version > $AZ_BATCH_NODE_SHARED_DIR/ffmpeg-version.txt"',
        wait_for_success=True,
        user_identity=batchmodels.UserIdentity(auto_user=batchmodels.AutoUserSpecification(
            scope=batchmodels.AutoUserScope.pool, elevation_level=batchmodels.ElevationLevel.admin)))
    client.pool.add(batchmodels.PoolAddParameter(
        id=pool_id,
        vm_size="STANDARD_D2S_V5",
        virtual_machine_configuration=batchmodels.VirtualMachineConfiguration(
            image_reference=ref, node_agent_sku_id=agent),
        target_dedicated_nodes=0,
        target_low_priority_nodes=nodes,
        start_task=start))


def ffmpeg_tasks(inputs, output_container_url):
    tasks = []
    for i, (name, url) in enumerate(inputs):
        out = os.path.splitext(name)[0] + ".mp3"
        tasks.append(batchmodels.TaskAddParameter(
            id="Task{}".format(i),
            command_line='/bin/bash -c "ffmpeg -nostdin -hide_banner -loglevel error -i {} -vn {}"'.format(name, out),
            resource_files=[batchmodels.ResourceFile(http_url=url, file_path=name)],
            output_files=[batchmodels.OutputFile(
                file_pattern=out,
                destination=batchmodels.OutputFileDestination(
                    container=batchmodels.OutputFileBlobContainerDestination(container_url=output_container_url)),
                upload_options=batchmodels.OutputFileUploadOptions(
                    upload_condition=batchmodels.OutputFileUploadCondition.task_success))]))
    return tasks


def delete_and_observe(what, delete, get, write):
    """Deletes, then records what the service shows until the entity is gone:
    states seen by get, error codes of a write made while it was deleting."""
    delete()
    seen = {"states": [], "writeErrors": [], "gone": False}
    deadline = time.monotonic() + 60

    def gone():
        try:
            state = get()
        except batchmodels.BatchErrorException as e:
            code = error_code(e)
            if code.endswith("NotFound"):
                seen["gone"] = True
                return True
            raise
        if not seen["states"] or seen["states"][-1] != state:
            seen["states"].append(state)
        if state == "deleting" and not seen["writeErrors"]:
            try:
                write()
                seen["writeErrors"].append("none")
            except batchmodels.BatchErrorException as e:
                seen["writeErrors"].append(error_code(e))
        return False

    until(what + " to be deleted", deadline, gone)
    return seen


def main():
    batch_url = setting("BATCH_URL")
    account = setting("BATCH_ACCOUNT_NAME")
    key = setting("BATCH_ACCOUNT_KEY")
    storage = Storage(setting("STORAGE_CONNECTION_STRING"))
    input_dir = setting("INPUT_DIR")
    output_dir = setting("OUTPUT_DIR")
    pool_id, job_id = "LinuxFfmpegPool", "LinuxFfmpegJob"
    deadline = time.monotonic() + float(os.environ.get("WORKFLOW_TIMEOUT_SECONDS", "240"))
    summary = {}

    storage.container("input")
    storage.container("output")
    inputs = [storage.upload("input", os.path.join(input_dir, f)) for f in sorted(os.listdir(input_dir))]
    log("uploaded", [n for n, _ in inputs])
    output_url = storage.writable_container_url("output")

    client = BatchServiceClient(SharedKeyCredentials(account, key), batch_url=batch_url)
    images, agent, ref = pick_image(client, "jammy", "22_04")
    summary["supportedImages"] = sorted("{}/{}/{} {}".format(
        i.image_reference.publisher, i.image_reference.offer, i.image_reference.sku, i.node_agent_sku_id) for i in images)
    summary["image"] = "{}/{}/{} {}".format(ref.publisher, ref.offer, ref.sku, agent)

    nodes = int(os.environ.get("POOL_NODES", "2"))
    create_pool(client, pool_id, agent, ref, nodes)
    def nodes_ready():
        states = [n.state for n in client.compute_node.list(pool_id)]
        return len(states) == nodes and all(s == batchmodels.ComputeNodeState.idle for s in states)

    until("the pool's nodes to finish their start task", deadline, nodes_ready)
    pool = client.pool.get(pool_id)
    summary["pool"] = {"allocationState": pool.allocation_state.value, "lowPriorityNodes": pool.current_low_priority_nodes,
                       "resizeErrors": [e.code for e in (pool.resize_errors or [])]}
    counts = [c for c in client.account.list_pool_node_counts() if c.pool_id == pool_id]
    summary["nodeCounts"] = {"lowPriorityIdle": counts[0].low_priority.idle, "lowPriorityTotal": counts[0].low_priority.total} if counts else None

    client.job.add(batchmodels.JobAddParameter(id=job_id, pool_info=batchmodels.PoolInformation(pool_id=pool_id)))
    added = client.task.add_collection(job_id, ffmpeg_tasks(inputs, output_url))
    summary["added"] = sorted("{} {}".format(r.task_id, r.status.value) for r in added.value)
    log("added", summary["added"])

    def all_completed():
        listed = list(client.task.list(job_id))
        return listed if all(t.state == batchmodels.TaskState.completed for t in listed) else None

    tasks = until("the tasks to complete", deadline, all_completed, 0.5)
    summary["tasks"] = sorted("{} {} exit={}".format(t.id, t.execution_info.result.value, t.execution_info.exit_code) for t in tasks)
    log("completed", summary["tasks"])

    summary["outputs"] = storage.download_all("output", output_dir)
    log("downloaded", summary["outputs"])

    summary["jobDeletion"] = delete_and_observe(
        "the job", lambda: client.job.delete(job_id), lambda: client.job.get(job_id).state.value,
        lambda: client.task.add(job_id, batchmodels.TaskAddParameter(id="late", command_line="true")))
    summary["poolDeletion"] = delete_and_observe(
        "the pool", lambda: client.pool.delete(pool_id), lambda: client.pool.get(pool_id).state.value,
        lambda: client.pool.resize(pool_id, batchmodels.PoolResizeParameter(target_low_priority_nodes=0)))
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    try:
        main()
    except batchmodels.BatchErrorException as e:
        message = getattr(getattr(e.error, "message", None), "value", "")
        log("Batch error:", error_code(e), message)
        sys.exit(1)
