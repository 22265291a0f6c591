"""Rows 7 and 7c's CRI driver, a process of its own under Debian's /usr/bin/python3
(python3-grpcio and python3-protobuf, which the bench's interpreter may not
have): JSON lines in, JSON lines out, each CRI call timed here. Run as a
plain script by row7_cri.py, so it imports nothing of the bench.
"""
import json
import os
import sys
import time

# tests/integration/cri of the repository (bench/shimbench/rows/ is three levels down).
CRI_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
                       "tests", "integration", "cri")
IMAGE = "localhost/secretshim-busybox:latest"  # tests/integration/cri/images.sh


def driver(sock, stub_dir):
    """JSON lines in, JSON lines out: the CRI calls of row 7, each timed here
    (no pipe to the bench in the timed part)."""
    sys.path.insert(0, CRI_DIR)
    import cri  # tests/integration/cri/cri.py
    client = cri.Cri(sock, stub_dir=stub_dir)
    configs = {}
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        try:
            if op == "version":
                reply = client.version()
            elif op == "pod":
                config = cri.Cri.pod_config(req["name"], req["namespace"], req["uid"], req.get("annotations"))
                pod = client.run_pod(req["name"], req["namespace"], req["uid"], handler=req["handler"], config=config)
                configs[pod] = config
                reply = {"pod": pod}
            elif op == "run":
                # As kubelet: the pod's config sent along (no lookup in the timed part).
                t0 = time.perf_counter()
                cid = client.create_container(req["pod"], configs[req["pod"]], req["name"], IMAGE,
                                              ["sleep", "100000"], annotations=req["annotations"])
                t1 = time.perf_counter()
                try:
                    client.start(cid)
                except cri.CriError:
                    client.remove(cid)
                    raise
                t2 = time.perf_counter()
                reply = {"cid": cid, "create": t1 - t0, "start": t2 - t1}
            elif op == "exec":
                rc, out, _ = client.exec_sync(req["cid"], req["cmd"], 30)
                reply = {"rc": rc, "stdout": out.decode(errors="replace")}
            elif op == "stop_rm":
                client.stop(req["cid"], 0)
                client.remove(req["cid"])
                reply = {}
            elif op == "rm_pod":
                client.stop_pod(req["pod"])
                client.remove_pod(req["pod"])
                reply = {}
            else:
                reply = {"error": "unknown op %r" % op}
        except cri.CriError as e:
            reply = {"error": str(e)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    client.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--driver":
        sys.exit(driver(sys.argv[2], sys.argv[3]))
    print("usage: row7_cri_driver.py --driver CONTAINERD_SOCK STUB_DIR (row 7 runs it)", file=sys.stderr)
    sys.exit(2)
