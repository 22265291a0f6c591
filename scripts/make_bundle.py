#!/usr/bin/env python3
"""Lays out an OCI bundle: a busybox-static rootfs and a config.json whose
hooks run secretshim-hook at createRuntime and poststop.

usage: make_bundle.py BUNDLE HOOK SOCKET ANNOTATION UID ARGS...
An empty ANNOTATION leaves the container without secrets. HOOK_STAGE in the
environment registers the hook at "prestart" instead of "createRuntime";
TASK_ANNOTATION sets io.secretshim.task (cluster mode).
USERNS=HOSTID:SIZE gives the container a user namespace mapping ids
0..SIZE-1 to HOSTID..; READONLY=1 makes the rootfs read-only; NO_RUN_TMPFS=1
leaves out the /run tmpfs.
"""
import json
import os
import shutil
import sys


def main():
    bundle, hook, sock, annotation, uid = sys.argv[1:6]
    args = sys.argv[6:]
    rootfs = os.path.join(bundle, "rootfs")
    for d in ("bin", "etc", "dev", "proc", "run", "tmp"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
    if not os.path.lexists(os.path.join(rootfs, "bin", "sh")):
        os.symlink("busybox", os.path.join(rootfs, "bin", "sh"))
    stage = os.environ.get("HOOK_STAGE", "createRuntime")
    hook_entry = lambda stage: {"path": hook, "args": ["secretshim-hook", "--socket", sock, stage], "timeout": 10}
    annotations = {
        # crun does not pass a hook's stderr on; this annotation of crun's keeps it.
        "run.oci.hooks.stderr": bundle + ".hookerr",
    }
    if annotation:
        annotations["io.secretshim.secrets"] = annotation
    if os.environ.get("TASK_ANNOTATION"):  # cluster mode: io.secretshim.task
        annotations["io.secretshim.task"] = os.environ["TASK_ANNOTATION"]
    spec = {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"terminal": False, "user": {"uid": int(uid), "gid": int(uid)}, "cwd": "/",
                    "args": args, "env": ["PATH=/bin"], "noNewPrivileges": True},
        "hostname": "secretshim",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "nodev", "mode=755"]}],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")]},
        "hooks": {stage: [hook_entry(stage)], "poststop": [hook_entry("poststop")]},
        "annotations": annotations,
    }
    if os.environ.get("USERNS"):
        host, size = (int(x) for x in os.environ["USERNS"].split(":"))
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": host, "size": size}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": host, "size": size}]
    if os.environ.get("READONLY") == "1":
        spec["root"]["readonly"] = True
    if os.environ.get("NO_RUN_TMPFS") == "1":
        spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/run"]
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f, indent=1)


if __name__ == "__main__":
    main()
