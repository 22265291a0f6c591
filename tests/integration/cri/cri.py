#!/usr/bin/python3
"""A small CRI v1 client for tests: drives containerd's CRI plugin over gRPC.

As a module:
    import cri
    with cri.Cri("/tmp/x/containerd.sock", stub_dir="/tmp/x/stubs") as c:
        pod = c.run_pod("web", "tenant-a", "uid-1", {"io.secretshim.secrets": "db_pass"},
                        handler="secretshim")
        ctr = c.create_container(pod, None, "app", "localhost/busybox:latest",
                                 ["sleep", "1000"])
        c.start(ctr)
        rc, out, err = c.exec_sync(ctr, ["cat", "/run/secrets/db_pass"])

As a command (JSON out, one-line errors on stderr, exit 1 on a gRPC error):
    cri.py SOCK version
    cri.py SOCK run-pod --name N --namespace NS --uid U --handler H [--annotation K=V]...
    cri.py SOCK pod-config POD            # the PodSandboxConfig containerd stored for the pod
    cri.py SOCK create POD --name N --image IMG [--annotation K=V]... [--pod-config JSON|@FILE] -- CMD [ARG]...
    cri.py SOCK start|rm CID
    cri.py SOCK stop CID [--timeout S]
    cri.py SOCK exec CID [--timeout S] [--raw] -- CMD [ARG]...
    cri.py SOCK status CID [--verbose]
    cri.py SOCK stop-pod|rm-pod POD
    cri.py SOCK pod-status POD [--verbose]
    cri.py SOCK images

Pods run with host network (NamespaceMode NODE), so no CNI is needed. The
runtime handler is always sent. CreateContainer always carries a
sandbox_config (containerd 1.6.20 crashes without one). Use /usr/bin/python3
(Debian's, which has python3-grpcio and python3-protobuf).
"""
import argparse
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import grpc
from google.protobuf import json_format

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "runtime_v1.proto")

pb = None       # runtime_v1_pb2, after load_stubs()
pb_grpc = None  # runtime_v1_pb2_grpc


class CriError(Exception):
    """A failed CRI call. details is the server's status text (containerd's
    error message, e.g. with a failing hook's stderr in it)."""

    def __init__(self, method, code, details):
        self.method, self.code, self.details = method, code, details
        super().__init__("%s: %s: %s" % (method, code, details))


def load_stubs(cache_dir=None):
    """Generate the Python stubs of runtime_v1.proto with protoc and
    grpc_python_plugin into cache_dir (regenerated when the .proto changes),
    or into a temporary directory removed after the import; import them."""
    global pb, pb_grpc
    if pb is not None:
        return pb, pb_grpc
    plugin = shutil.which("grpc_python_plugin")
    if not shutil.which("protoc") or not plugin:
        raise RuntimeError("protoc and grpc_python_plugin are needed "
                           "(apt-get install protobuf-compiler protobuf-compiler-grpc)")
    with open(PROTO, "rb") as f:
        stamp = hashlib.sha256(f.read()).hexdigest()
    tmp = None
    if cache_dir is None:
        out = tmp = tempfile.mkdtemp(prefix="cri-stubs-")
    else:
        out = os.path.abspath(cache_dir)
        os.makedirs(out, exist_ok=True)
    stamp_file = os.path.join(out, "runtime_v1.sha256")
    try:
        fresh = os.path.exists(stamp_file) and open(stamp_file).read() == stamp
        if not fresh:
            subprocess.run(["protoc", "-I", HERE, "--python_out=" + out, "--grpc_out=" + out,
                            "--plugin=protoc-gen-grpc=" + plugin, PROTO],
                           check=True, stdout=subprocess.DEVNULL)
            with open(stamp_file, "w") as f:
                f.write(stamp)
        sys.path.insert(0, out)
        dont_write = sys.dont_write_bytecode
        sys.dont_write_bytecode = True  # no __pycache__ in the stub dir
        try:
            pb = importlib.import_module("runtime_v1_pb2")
            pb_grpc = importlib.import_module("runtime_v1_pb2_grpc")
        finally:
            sys.dont_write_bytecode = dont_write
            sys.path.remove(out)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return pb, pb_grpc


def to_dict(msg):
    """A message as a dict (cri-api field names, defaults included; int64
    as strings, as protobuf's JSON mapping does); verbose "info" values
    parsed as JSON."""
    d = json_format.MessageToDict(msg, preserving_proto_field_name=True,
                                  including_default_value_fields=True)
    for k, v in d.get("info", {}).items():
        try:
            d["info"][k] = json.loads(v)
        except ValueError:
            pass
    return d


class Cri:
    def __init__(self, sock, stub_dir=None, timeout=60):
        load_stubs(stub_dir)
        self.timeout = timeout
        self.channel = grpc.insecure_channel(
            "unix://" + os.path.abspath(sock),
            options=[("grpc.max_receive_message_length", 64 << 20)])
        self.rt = pb_grpc.RuntimeServiceStub(self.channel)
        self.img = pb_grpc.ImageServiceStub(self.channel)

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, stub, method, req, timeout=None):
        try:
            return getattr(stub, method)(req, timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            raise CriError(method, e.code().name, e.details()) from None

    # --- pods
    @staticmethod
    def pod_config(name, namespace, uid, annotations=None, attempt=0, log_directory=""):
        """A PodSandboxConfig on the host network (no CNI), like kubelet's
        for a hostNetwork pod; keep it and pass it to create_container."""
        ns = pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER, ipc=pb.POD)
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=attempt),
            log_directory=log_directory,
            annotations=dict(annotations or {}),
            linux=pb.LinuxPodSandboxConfig(
                security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns)))

    def run_pod(self, name, namespace, uid, annotations=None, handler="", attempt=0, config=None):
        """RunPodSandbox; returns the pod (sandbox) id. handler is the
        runtime handler (containerd's runtimes.<name>; "" = the default)."""
        config = config or self.pod_config(name, namespace, uid, annotations, attempt)
        r = self._call(self.rt, "RunPodSandbox",
                       pb.RunPodSandboxRequest(config=config, runtime_handler=handler))
        return r.pod_sandbox_id

    def pod_status(self, pod_id, verbose=False):
        return to_dict(self._call(self.rt, "PodSandboxStatus",
                                  pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose)))

    def pod_config_of(self, pod_id):
        """The PodSandboxConfig containerd stored for the pod (verbose
        PodSandboxStatus, info "config"), as kubelet resends it."""
        info = self._call(self.rt, "PodSandboxStatus",
                          pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True)).info
        config = json.loads(info["info"])["config"]
        return json_format.ParseDict(config, pb.PodSandboxConfig(), ignore_unknown_fields=True)

    def stop_pod(self, pod_id):
        self._call(self.rt, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))

    def remove_pod(self, pod_id):
        self._call(self.rt, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))

    # --- containers
    def create_container(self, pod_id, pod_config, name, image, command, args=None,
                         annotations=None, envs=None, attempt=0):
        """CreateContainer; returns the container id. pod_config is the
        PodSandboxConfig sent as sandbox_config (None: the one containerd
        stored for the pod). containerd 1.6 takes the container's
        sandbox-name/namespace/uid annotations and the pod annotations from
        this request field, not from the stored pod."""
        if pod_config is None:
            pod_config = self.pod_config_of(pod_id)
        # Like kubelet: the container gets the pod's namespace modes (its own
        # pid namespace: its command is pid 1 there and ignores SIGTERM
        # unless it handles it; stop(cid, 0) kills at once).
        ns = pb.NamespaceOption()
        ns.CopyFrom(pod_config.linux.security_context.namespace_options)
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name, attempt=attempt),
            image=pb.ImageSpec(image=image),
            command=list(command or []), args=list(args or []),
            envs=[pb.KeyValue(key=k, value=v) for k, v in (envs or {}).items()],
            annotations=dict(annotations or {}),
            linux=pb.LinuxContainerConfig(
                security_context=pb.LinuxContainerSecurityContext(namespace_options=ns)))
        r = self._call(self.rt, "CreateContainer",
                       pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config,
                                                 sandbox_config=pod_config))
        return r.container_id

    def start(self, cid):
        self._call(self.rt, "StartContainer", pb.StartContainerRequest(container_id=cid))

    def stop(self, cid, timeout=0):
        """StopContainer: SIGTERM (the image's stop signal), SIGKILL after
        timeout seconds (0: at once)."""
        self._call(self.rt, "StopContainer", pb.StopContainerRequest(container_id=cid, timeout=timeout),
                   timeout=self.timeout + timeout)

    def remove(self, cid):
        self._call(self.rt, "RemoveContainer", pb.RemoveContainerRequest(container_id=cid))

    def status(self, cid, verbose=False):
        return to_dict(self._call(self.rt, "ContainerStatus",
                                  pb.ContainerStatusRequest(container_id=cid, verbose=verbose)))

    def exec_sync(self, cid, cmd, timeout=0):
        """ExecSync; returns (exit code, stdout bytes, stderr bytes)."""
        r = self._call(self.rt, "ExecSync", pb.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=timeout),
                       timeout=(timeout or self.timeout) + 30)
        return r.exit_code, r.stdout, r.stderr

    # --- runtime and images
    def version(self):
        return to_dict(self._call(self.rt, "Version", pb.VersionRequest(version="v1")))

    def images(self):
        return to_dict(self._call(self.img, "ListImages", pb.ListImagesRequest())).get("images", [])

    def image_status(self, ref):
        return to_dict(self._call(self.img, "ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=ref))))


# --- command line
def _kv(s):
    k, sep, v = s.partition("=")
    if not sep or not k:
        raise argparse.ArgumentTypeError("expected KEY=VALUE, got %r" % s)
    return k, v


def _json_arg(s):
    if s.startswith("@"):
        with open(s[1:]) as f:
            s = f.read()
    return json.loads(s)


def main(argv):
    p = argparse.ArgumentParser(prog="cri.py", description="CRI v1 test client (JSON out)")
    p.add_argument("sock", help="containerd's gRPC socket")
    p.add_argument("--stub-dir", default=os.environ.get("CRI_STUB_DIR"),
                   help="cache dir for the generated stubs (default $CRI_STUB_DIR, else a temp dir)")
    p.add_argument("--call-timeout", type=float, default=60)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("version")
    sub.add_parser("images")
    s = sub.add_parser("run-pod")
    s.add_argument("--name", required=True)
    s.add_argument("--namespace", required=True)
    s.add_argument("--uid", required=True)
    s.add_argument("--handler", required=True, help='runtime handler ("" for the default)')
    s.add_argument("--attempt", type=int, default=0)
    s.add_argument("--annotation", type=_kv, action="append", default=[])
    for name in ("pod-config", "stop-pod", "rm-pod"):
        sub.add_parser(name).add_argument("pod")
    s = sub.add_parser("pod-status")
    s.add_argument("pod")
    s.add_argument("--verbose", action="store_true")
    s = sub.add_parser("create")
    s.add_argument("pod")
    s.add_argument("--name", required=True)
    s.add_argument("--image", required=True)
    s.add_argument("--attempt", type=int, default=0)
    s.add_argument("--annotation", type=_kv, action="append", default=[])
    s.add_argument("--env", type=_kv, action="append", default=[])
    s.add_argument("--pod-config", type=_json_arg,
                   help="sandbox_config as JSON (or @FILE); default: the pod's stored config")
    s.add_argument("command", nargs="+")
    for name in ("start", "rm"):
        sub.add_parser(name).add_argument("cid")
    s = sub.add_parser("stop")
    s.add_argument("cid")
    s.add_argument("--timeout", type=int, default=0)
    s = sub.add_parser("status")
    s.add_argument("cid")
    s.add_argument("--verbose", action="store_true")
    s = sub.add_parser("exec")
    s.add_argument("cid")
    s.add_argument("--timeout", type=int, default=0)
    s.add_argument("--raw", action="store_true",
                   help="write the command's stdout/stderr as they are and exit with its code")
    s.add_argument("cmd_argv", nargs="+", metavar="CMD")
    a = p.parse_args(argv)

    out = None
    try:
        with Cri(a.sock, stub_dir=a.stub_dir, timeout=a.call_timeout) as c:
            if a.cmd == "version":
                out = c.version()
            elif a.cmd == "images":
                out = c.images()
            elif a.cmd == "run-pod":
                print(c.run_pod(a.name, a.namespace, a.uid, dict(a.annotation), a.handler, a.attempt))
            elif a.cmd == "pod-config":
                out = to_dict(c.pod_config_of(a.pod))
            elif a.cmd == "pod-status":
                out = c.pod_status(a.pod, a.verbose)
            elif a.cmd == "stop-pod":
                c.stop_pod(a.pod)
            elif a.cmd == "rm-pod":
                c.remove_pod(a.pod)
            elif a.cmd == "create":
                pc = None
                if a.pod_config is not None:
                    pc = json_format.ParseDict(a.pod_config, pb.PodSandboxConfig())
                print(c.create_container(a.pod, pc, a.name, a.image, a.command,
                                         annotations=dict(a.annotation), envs=dict(a.env),
                                         attempt=a.attempt))
            elif a.cmd == "start":
                c.start(a.cid)
            elif a.cmd == "stop":
                c.stop(a.cid, a.timeout)
            elif a.cmd == "rm":
                c.remove(a.cid)
            elif a.cmd == "status":
                out = c.status(a.cid, a.verbose)
            elif a.cmd == "exec":
                rc, o, e = c.exec_sync(a.cid, a.cmd_argv, a.timeout)
                if a.raw:
                    sys.stdout.buffer.write(o)
                    sys.stderr.buffer.write(e)
                    return rc
                out = {"exit_code": rc, "stdout": o.decode(errors="replace"),
                       "stderr": e.decode(errors="replace")}
    except CriError as e:
        print("cri.py: %s" % str(e).replace("\n", "\\n"), file=sys.stderr)
        return 1
    except (OSError, RuntimeError, ValueError, json_format.Error, subprocess.CalledProcessError) as e:
        print("cri.py: %s" % str(e).replace("\n", "\\n"), file=sys.stderr)
        return 1
    if out is not None:
        try:
            json.dump(out, sys.stdout, indent=1, sort_keys=True)
            print(flush=True)
        except BrokenPipeError:
            sys.stdout = None  # quiet exit when the reader went away
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
