#!/usr/bin/env python3
"""Runs the real ecrm binary the way a rendered chart would start it in its pod.

usage: run_rendered.py ECRM_BINARY RENDERED.yaml NAME

Takes the StatefulSet's container args, the ConfigMap's ecrm.yaml and the Secret's files from the
`helm template` output, lays them out under a temporary root at the paths the pod mounts them
(secrets the chart only references, such as a Kafka CA, get a self-signed stand-in), and starts
ecrm with them. Embedded mode must become ready and accept the Secret's write key and admin token;
Kafka mode (whose brokers do not exist here) must stay alive and answer /readyz 503 "starting",
which it only does once the whole configuration was accepted. SIGTERM must then stop it with 0.
"""
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml


def main():
    binary, rendered, name = sys.argv[1:4]
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: {k: base64.b64decode(v) for k, v in d.get("data", {}).items()}
               for d in docs if d["kind"] == "Secret"}
    root = tempfile.mkdtemp(prefix=f"ecrm-helm-{name}-")

    def local(path):
        return os.path.join(root, path.lstrip("/"))

    def rewrite(text):
        for mount in container["volumeMounts"]:
            if mount["mountPath"] != "/tmp":  # ecrm names no path there; the root is under /tmp
                text = text.replace(mount["mountPath"], local(mount["mountPath"]))
        return (text.replace("0.0.0.0:8080", "127.0.0.1:0").replace("$(POD_NAME)", f"{name}-0")
                .replace("$(POD_NAMESPACE)", "shop"))

    volumes = {v["name"]: v for v in pod["volumes"]}
    standin = None
    provided = {}  # secret key -> the content the pod gets
    for mount in container["volumeMounts"]:
        volume = volumes.get(mount["name"], {})  # none: a volume claim (the data dir)
        target = local(mount["mountPath"])
        if "configMap" in volume:
            data = configmaps[volume["configMap"]["name"]]
            files = {k: rewrite(v).encode() for k, v in data.items()}
        elif "secret" in volume:
            data = secrets.get(volume["secret"]["secretName"])
            if data is None:  # a secret the operator provides: stand-ins (a certificate, or a value)
                if standin is None:
                    standin = os.path.join(root, "standin")
                    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                                    "-subj", "/CN=stand-in", "-keyout", standin + ".key", "-out", standin + ".crt"],
                                   check=True, capture_output=True)
                def value(key):
                    if key.endswith(".key"):
                        return open(standin + ".key", "rb").read()
                    if key.endswith((".crt", ".pem")):
                        return open(standin + ".crt", "rb").read()
                    return f"standin-{key}\n".encode()
                data = {item["key"]: value(item["key"]) for item in volume["secret"].get("items", [])}
            provided.update(data)
            files = {item["path"]: data[item["key"]] for item in volume["secret"]["items"]} \
                if volume["secret"].get("items") else data
        else:
            os.makedirs(target, exist_ok=True)
            continue
        if "subPath" in mount:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "wb").write(files[mount["subPath"]])
        else:
            os.makedirs(target, exist_ok=True)
            for path, content in files.items():
                open(os.path.join(target, path), "wb").write(content)

    args = [rewrite(a) for a in container["args"]]
    config = yaml.safe_load(open(local("/etc/ecrm/ecrm.yaml")))
    data_dir = config.get("data_dir", local("/var/lib/ecrm"))
    kafka = bool(config.get("kafka_brokers"))
    log = open(os.path.join(root, "ecrm.log"), "w")
    child = subprocess.Popen([binary] + args, stdout=log, stderr=subprocess.STDOUT)
    try:
        addr_file = os.path.join(data_dir, "ecrm.addr")
        deadline = time.time() + 40
        while not os.path.exists(addr_file):
            if child.poll() is not None or time.time() > deadline:
                fail(name, f"ecrm did not start (exit {child.poll()})", root)
            time.sleep(0.1)
        base = "http://" + open(addr_file).read().strip()
        want_ready = 503 if kafka else 200
        status, body = 0, ""
        while time.time() < deadline:
            status, body = get(base + "/readyz")
            if status == want_ready and (not kafka or "starting" in body):
                break
            time.sleep(0.2)
        else:
            fail(name, f"/readyz {status} {body}, want {want_ready}", root)
        if get(base + "/healthz")[0] != 200:
            fail(name, "/healthz is not 200", root)
        if not kafka:
            secret = provided
            token = secret["admin-token"].decode().strip()
            key = [k for k in secret["write-keys"].decode().split("\n") if k.strip()][0].strip()
            auth = "Basic " + base64.b64encode((key + ":").encode()).decode()
            status, body = request(base + "/v1/track", auth,
                                   json.dumps({"anonymousId": "helm", "event": "Installed"}).encode())
            if status != 200:
                fail(name, f"the Secret's write key: {status} {body}", root)
            status, body = request(base + "/v1/profiles/anonymous_id:nobody", "Bearer " + token)
            if status != 404:
                fail(name, f"the Secret's admin token: {status} {body}", root)
        child.send_signal(signal.SIGTERM)
        code = child.wait(timeout=15)
        if code != 0:
            fail(name, f"exit {code} after SIGTERM", root)
    finally:
        if child.poll() is None:
            child.kill()
    subprocess.run(["rm", "-rf", root])
    print(f"rendered {name}: ecrm started from the chart's args, config and secrets "
          f"({'kafka, waiting for the brokers' if kafka else 'embedded, ready'})")


def get(url):
    return request(url)


def request(url, auth=None, body=None):
    req = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    if auth:
        req.add_header("Authorization", auth)
    if body:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def fail(name, message, root):
    print(f"FAIL: rendered {name}: {message}")
    print(open(os.path.join(root, "ecrm.log")).read()[-3000:])
    sys.exit(1)


if __name__ == "__main__":
    main()
