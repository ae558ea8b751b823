#!/usr/bin/env python3
# A recording `aws` in front of s3rver, which has no versioning and ignores Object Lock. It answers
# what a versioned bucket with Object Lock enabled answers on AWS (S3 API reference: PutObject,
# HeadObject, PutObjectRetention, GetObjectRetention; "Using S3 Object Lock" in the S3 user guide),
# from a small per-version store, and passes every other call to the real aws CLI:
# - every PutObject (`s3 cp <file> s3://...`) makes a new version with its own VersionId, and
#   HeadObject returns the current version's VersionId;
# - PutObjectRetention sets Mode and RetainUntilDate on the version given by --version-id
#   (NoSuchVersion for another id). Without --bypass-governance-retention a GOVERNANCE retention
#   can only be lengthened in the same mode, and a COMPLIANCE one only lengthened, never changed
#   (AccessDenied); a date in the past is refused (InvalidArgument);
# - GetObjectRetention of a version without a retention fails with NoSuchObjectLockConfiguration.
# Errors read like the CLI's ("An error occurred (Code) when calling the X operation: ..."), exit
# 255 as aws CLI v1 does for a service error (v2: 254).
# Env: AWS_SHIM_REAL (the real aws), AWS_SHIM_STORE (JSON store), AWS_SHIM_LOG (one line per
# call), AWS_SHIM_FAIL_RETENTION (a key whose PutObjectRetention is denied, like a policy without
# s3:PutObjectRetention on it), AWS_SHIM_HEAD_FORBIDDEN (a HEAD of a missing key answers 403, as
# to a writer without s3:ListBucket).
import datetime
import json
import os
import subprocess
import sys

import jmespath

REAL = os.environ["AWS_SHIM_REAL"]
STORE = os.environ["AWS_SHIM_STORE"]
args = sys.argv[1:]


def log(line):
    with open(os.environ["AWS_SHIM_LOG"], "a") as f:
        f.write(line + "\n")


def load():
    try:
        with open(STORE) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"next": 1, "current": {}, "retention": {}}


def save(s):
    with open(STORE + ".tmp", "w") as f:
        json.dump(s, f, indent=2, sort_keys=True)
    os.replace(STORE + ".tmp", STORE)


def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default


def fail(code, operation, message):
    sys.stderr.write(f"\nAn error occurred ({code}) when calling the {operation} operation: {message}\n")
    sys.exit(255)


def output(data):
    q = opt("--query")
    if q is not None:
        data = jmespath.search(q, data)
    if opt("--output", "json") == "text":
        if isinstance(data, list):
            print("\t".join("None" if v is None else str(v) for v in data))
        elif data is not None or q is not None:
            print("None" if data is None else data)
    else:
        print(json.dumps(data, indent=4))


def new_version(s, key):
    vid = f"v{s['next']:04d}-{key.replace('/', '_')}"
    s["next"] += 1
    s["current"][key] = vid
    return vid


def parse_date(d):
    return datetime.datetime.fromisoformat(d.replace("Z", "+00:00"))


def main():
    service = next((a for a in args if a in ("s3", "s3api")), None)
    op = args[args.index(service) + 1] if service else None
    log(" ".join([service or "-", op or "-", opt("--key", "") or args[-1]]))
    s = load()
    if service == "s3api" and op in ("put-object-retention", "get-object-retention"):
        key, vid = opt("--key"), opt("--version-id")
        name = "PutObjectRetention" if op.startswith("put") else "GetObjectRetention"
        if key not in s["current"]:
            fail("NoSuchKey", name, "The specified key does not exist.")
        if vid is not None and vid != s["current"][key]:
            fail("NoSuchVersion", name, "The specified version does not exist.")
        vid = s["current"][key]
        held = s["retention"].get(vid)
        if op == "get-object-retention":
            if held is None:
                fail(
                    "NoSuchObjectLockConfiguration",
                    name,
                    "The specified object does not have a ObjectLock configuration",
                )
            output({"Retention": held})
            return 0
        if key == os.environ.get("AWS_SHIM_FAIL_RETENTION"):
            fail("AccessDenied", name, "Access Denied")
        fields = dict(p.split("=", 1) for p in opt("--retention").split(","))
        mode, until = fields["Mode"], parse_date(fields["RetainUntilDate"])
        if until <= datetime.datetime.now(datetime.timezone.utc):
            fail("InvalidArgument", name, "The retain until date must be in the future!")
        bypass = "--bypass-governance-retention" in args
        if held is not None:
            old = parse_date(held["RetainUntilDate"])
            weaker = until < old or mode != held["Mode"]
            if weaker and (held["Mode"] == "COMPLIANCE" or not bypass):
                fail("AccessDenied", name, "Access Denied because object protected by object lock.")
        s["retention"][vid] = {
            "Mode": mode,
            "RetainUntilDate": until.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        }
        save(s)
        return 0
    if service == "s3api" and op == "head-object":
        rest, skip = [], False
        for a in args:
            if skip:
                skip = False
            elif a in ("--query", "--output"):
                skip = True
            else:
                rest.append(a)
        r = subprocess.run([REAL, *rest, "--output", "json"], capture_output=True, text=True)
        if r.returncode != 0 and "(404)" in r.stderr and os.environ.get("AWS_SHIM_HEAD_FORBIDDEN"):
            # S3 answers a HEAD of a missing key with 403 to a caller without s3:ListBucket on it
            # (HeadObject, "Permissions" in the S3 API reference)
            fail("403", "HeadObject", "Forbidden")
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            return r.returncode
        data = json.loads(r.stdout)
        key = opt("--key")
        data["VersionId"] = s["current"].get(key) or new_version(s, key)
        save(s)
        output(data)
        return 0
    r = subprocess.run([REAL, *args])
    if r.returncode == 0 and service == "s3" and op == "cp" and args[-1].startswith("s3://"):
        if not args[-2].startswith("s3://"):
            new_version(s, args[-1].split("/", 3)[3])
            save(s)
    return r.returncode


sys.exit(main())
