#!/usr/bin/env python3
"""Helpers for the slipway benchmark harness (bench/run.sh). Standard library only.

Sub-commands (run.sh calls size, compare, report, markdown and randfile; bench/iso.sh calls
iso-report; bench/servicing.sh calls size, changed and servicing-report; bench/sysprep.sh
calls size, randfile, sysprep-check, specialize-check and sysprep-report; all are also usable
on their own):

  bench.py size PATH...
      Prints "FILE_BYTES ALLOC_BYTES FILES" for the given files/directories.
      FILE_BYTES is the sum of the apparent sizes (st_size) of the regular files,
      each inode counted once (hard links are not counted twice). Directories,
      symlinks and device nodes count 0. ALLOC_BYTES is the space allocated on disk
      for the same files (st_blocks * 512). This is the "size" every table reports,
      NOT `du -sb` (which would also add the 4 KiB of every directory: about 11 MB
      for casync's ~2,700 chunk directories).

  bench.py compare SRC DST
      Compares two trees entry by entry (type, permission bits, uid, gid, size,
      device number, symlink target, mtime in ns, all xattrs including ACLs and
      capabilities, sha256 of content, number of names per inode inside the tree)
      and prints one JSON object with the count of differing entries per field.
      Used once per harness invocation (run 1) to show what each tool restores.

  bench.py report --raw RAW.jsonl --meta META.json --out OUT.json [--json-copy X.json]
      Reads the raw measurements written by run.sh (one JSON object per line),
      computes medians over the runs, evaluates the targets of issue 3, prints the
      table, and writes everything (raw records, medians, targets, machine) to OUT.

  bench.py markdown RESULTS.json OUT.md
      Renders docs/benchmarks.md from a results JSON (keeping the server section).

  bench.py server-markdown RESULTS.json OUT.md
      Writes the deployment server section (bench/server.sh's results) into OUT.md,
      between its markers, replacing the previous one.

  bench.py iso-report --raw RAW.jsonl --meta META.json --out OUT.json
      Reads the raw measurements of bench/iso.sh (slipway iso build against
      xorriso -as mkisofs -R -J on one root), computes medians, sizes and the ratios
      slipway / xorriso, evaluates "at least as fast, no larger" (PASS/FAIL; N/A when
      slipway did not run), prints the table and writes everything to OUT.

  bench.py changed OLD NEW --list LIST0 --deleted DELETED0
      What turns tree OLD into tree NEW, for bench/servicing.sh's tar baseline and tar -x
      reference: writes to LIST0 the entries of NEW that are new or differ from OLD in any
      field `compare` checks (mtime to the ns included), as NUL-terminated "./path" names
      depth first (each directory followed by everything below it), with every name of a hard-linked file when one name is
      listed and the directory of every listed entry; writes to DELETED0 the topmost entries of OLD that NEW lacks; prints counts and
      the regular-file bytes listed as one JSON object.

  bench.py servicing-report --raw RAW.jsonl --meta META.json --out OUT.json
      Reads the raw measurements of bench/servicing.sh (package build with and without
      deltas, full-file tar.zst / tar.xz baselines, install, uninstall, integrate --tree and
      --image, rsync and tar -x references), computes medians, sizes and ratios, prints the
      tables and writes everything to OUT.

  bench.py sysprep-check ROOT --before DIR --step STEP --run N [--fsck TEXT] [--expect]
      For bench/sysprep.sh: what is left in ROOT of the machine identity the bench put into
      the prepared root DIR (machine-id, D-Bus machine-id, SSH host keys and whether new ones
      are made at first boot, random seed, credential secret, cloud-init instance, root's
      bash history, DHCP lease, rotated and live logs, journal; hostname, utmp files and
      /root/.ssh for information). Prints one JSON "check" record; with --expect exits 1
      when an identity item is left (the check for slipway generalize).

  bench.py specialize-check ROOT --step STEP --run N --hostname H --user U --hash HASH
           --pubkey FILE --timezone TZ --binary PATH
      For bench/sysprep.sh: whether slipway specialize applied the bench's answer file
      (host name, user, password hash, authorized key, networkd file, time zone, host
      keys made offline, slipway binary and first-boot unit); one JSON record, exit 1 if not.

  bench.py sysprep-report --raw RAW.jsonl --meta META.json --out OUT.json
      Reads the raw measurements and checks of bench/sysprep.sh (virt-sysprep cold and
      warm, slipway generalize on a mounted image and on a directory, slipway specialize),
      computes medians and ratios, prints the time, ratio and correctness tables and
      writes everything, the tables in Markdown included, to OUT.

  bench.py randfile SEED SIZE PATH
      Writes SIZE deterministic pseudo-random bytes to PATH (Python's Mersenne Twister
      seeded with SEED, 1 MiB blocks). run.sh uses it for the 2 GB tree when openssl is
      missing (with openssl it uses the AES-128-CTR keystream instead, which is faster).

Units: MB = 10^6 bytes, MiB = 2^20 bytes. Peak RSS comes from GNU time's %M (KiB).
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import stat
import statistics
import subprocess
import sys

TOOLS = ["slipway", "wimlib", "tar+zstd", "casync"]
PEERS = TOOLS[1:]

# "far below casync's": we read it as "at most this fraction of casync's new bytes".
FAR_BELOW_CASYNC = 0.5
# "store size at most 0.9 x wimlib's LZX WIM"
WIM_SIZE_FRACTION = 0.9
# "peak memory under 1 GiB when capturing a 2 GB tree"
MEM_LIMIT_MIB = 1024


# --------------------------------------------------------------------------- size

def tree_size(paths):
    seen = set()
    fbytes = abytes = files = 0
    for top in paths:
        if not os.path.lexists(top):
            continue
        st = os.lstat(top)
        entries = []
        if stat.S_ISDIR(st.st_mode):
            for dirpath, dirnames, filenames in os.walk(top):
                for n in filenames:
                    entries.append(os.path.join(dirpath, n))
        else:
            entries.append(top)
        for p in entries:
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode):
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            fbytes += st.st_size
            abytes += st.st_blocks * 512
            files += 1
    return fbytes, abytes, files


def cmd_size(args):
    f, a, n = tree_size(args.paths)
    print(f, a, n)


def cmd_randfile(args):
    import random
    rng = random.Random(args.seed)
    left = args.size
    with open(args.path, "wb") as f:
        while left > 0:
            n = min(left, 1 << 20)
            f.write(rng.randbytes(1 << 20)[:n])
            left -= n


# ------------------------------------------------------------------------ compare

def manifest(root):
    """path -> dict of attributes, for every entry below root (root itself is '/')."""
    out = {}
    inode_names = {}
    root = os.path.abspath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        names = [(dirpath, None)] if dirpath == root else []
        names += [(os.path.join(dirpath, n), n) for n in dirnames + sorted(filenames)]
        for p, _ in names:
            rel = "/" if p == root else "/" + os.path.relpath(p, root)
            st = os.lstat(p)
            fmt = stat.S_IFMT(st.st_mode)
            e = {
                "type": fmt,
                "mode": stat.S_IMODE(st.st_mode),
                "uid": st.st_uid,
                "gid": st.st_gid,
                "size": st.st_size if stat.S_ISREG(st.st_mode) else 0,
                "rdev": st.st_rdev if (stat.S_ISCHR(fmt) or stat.S_ISBLK(fmt)) else 0,
                "target": os.readlink(p) if stat.S_ISLNK(fmt) else None,
                "mtime_ns": st.st_mtime_ns,
            }
            try:
                names_x = sorted(os.listxattr(p, follow_symlinks=False))
                e["xattrs"] = tuple((n, os.getxattr(p, n, follow_symlinks=False)) for n in names_x)
            except OSError:
                e["xattrs"] = ("<unreadable>",)
            if stat.S_ISREG(fmt):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for blk in iter(lambda: f.read(1 << 20), b""):
                        h.update(blk)
                e["sha256"] = h.hexdigest()
                inode_names.setdefault((st.st_dev, st.st_ino), []).append(rel)
            else:
                e["sha256"] = None
            out[rel] = e
    for names in inode_names.values():
        for n in names:
            out[n]["names_per_inode"] = len(names)
    for e in out.values():
        e.setdefault("names_per_inode", 1)
    return out


def cmd_compare(args):
    a = manifest(args.src)
    b = manifest(args.dst)
    fields = ["type", "mode", "uid", "gid", "size", "rdev", "target", "sha256", "xattrs",
              "names_per_inode"]
    res = {"entries": len(a), "missing": 0, "extra": 0}
    for f in fields + ["mtime_ns"]:
        res[f] = 0
    res["mtime_sub_us_only"] = 0  # mtime differs by less than 1 microsecond (e.g. WIM's 100 ns)
    examples = {}
    for path, ea in a.items():
        eb = b.get(path)
        if eb is None:
            res["missing"] += 1
            examples.setdefault("missing", path)
            continue
        for f in fields:
            if ea[f] != eb[f]:
                res[f] += 1
                examples.setdefault(f, path)
        if ea["mtime_ns"] != eb["mtime_ns"]:
            if abs(ea["mtime_ns"] - eb["mtime_ns"]) < 1000:
                res["mtime_sub_us_only"] += 1
            else:
                res["mtime_ns"] += 1
                examples.setdefault("mtime_ns", path)
    res["extra"] = sum(1 for p in b if p not in a)
    res["identical"] = all(v == 0 for k, v in res.items() if k != "entries")
    res["examples"] = examples
    print(json.dumps(res, sort_keys=True))


# ------------------------------------------------------------------------- report

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def run_cmd(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"unavailable ({e.__class__.__name__})"


def machine_info(meta):
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    first = lambda s: s.splitlines()[0] if s else s
    versions = {
        "slipway": first(run_cmd([meta["slipway_bin"], "--version"])),
        "wimlib-imagex": first(run_cmd(["wimlib-imagex", "--version"])),
        "tar": first(run_cmd(["tar", "--version"])),
        "zstd": first(run_cmd(["zstd", "--version"])),
        "casync": first(run_cmd(["casync", "--version"])),
        "debootstrap": run_cmd(["dpkg-query", "-W", "-f=${Version}", "debootstrap"]),
        "GNU time": run_cmd(["dpkg-query", "-W", "-f=${Version}", "time"]),
        "rustc": first(run_cmd(["rustc", "--version"])),
    }
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_total_bytes": mem_kib * 1024,
        "kernel": platform.release(),
        "os": first(run_cmd(["sh", "-c", ". /etc/os-release && echo \"$PRETTY_NAME\""])),
        "versions": versions,
    }


def load_raw(path):
    recs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                recs.append(json.loads(line))
    return recs


def compute(recs, meta):
    runs = sorted({r["run"] for r in recs if "run" in r})
    times = [r for r in recs if r["kind"] == "time"]
    sizes = [r for r in recs if r["kind"] == "size"]
    values = [r for r in recs if r["kind"] == "value"]

    def tmed(tool, step, field):
        return median([r[field] for r in times if r["tool"] == tool and r["step"] == step])

    def smed(tool, key, field="bytes"):
        return median([r[field] for r in sizes if r["tool"] == tool and r["key"] == key])

    def vmed(tool, key):
        return median([r["value"] for r in values if r["tool"] == tool and r["key"] == key])

    root_bytes = meta["roots"]["v1"]["file_bytes"]
    med = {}
    for tool in TOOLS:
        m = {}
        for step in ("capture_v1", "apply_v1", "capture_v2"):
            m[step + "_s"] = tmed(tool, step, "wall_s")
            u, s = tmed(tool, step, "user_s"), tmed(tool, step, "sys_s")
            cpu = median([r["user_s"] + r["sys_s"] for r in times
                          if r["tool"] == tool and r["step"] == step])
            m[step + "_cpu_s"] = cpu
            rss = tmed(tool, step, "rss_kib")
            m[step + "_rss_mib"] = rss / 1024 if rss is not None else None
        m["size_v1_bytes"] = smed(tool, "v1")
        m["size_v1_alloc_bytes"] = smed(tool, "v1", "alloc_bytes")
        m["v2_new_bytes"] = smed(tool, "v2_new")
        m["capture_v1_MBps"] = (root_bytes / 1e6 / m["capture_v1_s"]) if m["capture_v1_s"] else None
        m["apply_v1_MBps"] = (root_bytes / 1e6 / m["apply_v1_s"]) if m["apply_v1_s"] else None
        # the memory step (2 GB tree): slipway and tar+zstd only
        t2 = [r for r in times if r["tool"] == tool and r["step"] == "capture_2g"]
        if t2:
            tree_bytes = meta["tree_2g"]["file_bytes"]
            m["capture_2g_s"] = median([r["wall_s"] for r in t2])
            m["capture_2g_cpu_s"] = median([r["user_s"] + r["sys_s"] for r in t2])
            m["capture_2g_MBps"] = tree_bytes / 1e6 / m["capture_2g_s"] if m["capture_2g_s"] else None
            m["capture_2g_rss_mib"] = median([r["rss_kib"] for r in t2]) / 1024
            m["capture_2g_rss_mib_max"] = max(r["rss_kib"] for r in t2) / 1024
            m["capture_2g_runs"] = len(t2)
            m["size_2g_bytes"] = smed(tool, "2g")
        if tool == "slipway":
            m["v2_new_bytes_reported"] = vmed(tool, "images_new_bytes_v2")
            m["v1_stored_bytes_reported"] = vmed(tool, "images_stored_bytes_v1")
        med[tool] = m

    ratios = {}
    sw = med["slipway"]
    for peer in PEERS:
        r = {}
        for k in ("size_v1_bytes", "capture_v1_s", "apply_v1_s", "capture_v2_s", "v2_new_bytes",
                  "capture_v1_rss_mib", "apply_v1_rss_mib"):
            a, b = med[peer].get(k), sw.get(k)
            r[k] = (a / b) if (a is not None and b) else None
        ratios[peer] = r

    def target(name, ok, detail):
        return {"target": name, "pass": bool(ok), "detail": detail}

    tz, wim, cas = med["tar+zstd"], med["wimlib"], med["casync"]
    t = []
    ok1 = sw["capture_v1_MBps"] >= tz["capture_v1_MBps"] and sw["size_v1_bytes"] <= tz["size_v1_bytes"]
    t.append(target(
        "capture throughput >= tar|zstd -3 -T0, with store <= .tar.zst", ok1,
        f"slipway {sw['capture_v1_MBps']:.0f} MB/s vs tar|zstd {tz['capture_v1_MBps']:.0f} MB/s "
        f"({sw['capture_v1_s']:.2f} s vs {tz['capture_v1_s']:.2f} s); "
        f"store {sw['size_v1_bytes']/1e6:.2f} MB vs .tar.zst {tz['size_v1_bytes']/1e6:.2f} MB"))
    ok2 = sw["apply_v1_s"] <= tz["apply_v1_s"]
    t.append(target(
        "apply time <= .tar.zst extraction", ok2,
        f"slipway {sw['apply_v1_s']:.2f} s vs tar extract {tz['apply_v1_s']:.2f} s "
        f"(x{sw['apply_v1_s']/tz['apply_v1_s']:.2f})"))
    lim = WIM_SIZE_FRACTION * wim["size_v1_bytes"]
    ok3 = sw["size_v1_bytes"] <= lim
    t.append(target(
        f"store size <= {WIM_SIZE_FRACTION} x wimlib LZX WIM", ok3,
        f"slipway {sw['size_v1_bytes']/1e6:.2f} MB vs limit {lim/1e6:.2f} MB "
        f"(WIM {wim['size_v1_bytes']/1e6:.2f} MB; slipway/WIM = {sw['size_v1_bytes']/wim['size_v1_bytes']:.3f})"))
    ok4a = sw["v2_new_bytes"] <= wim["v2_new_bytes"]
    ok4b = sw["v2_new_bytes"] <= FAR_BELOW_CASYNC * cas["v2_new_bytes"]
    t.append(target(
        f"v2 new bytes <= wimlib delta WIM and <= {FAR_BELOW_CASYNC} x casync's", ok4a and ok4b,
        f"slipway {sw['v2_new_bytes']/1e6:.2f} MB (store growth; slipway's own new_bytes "
        f"{(sw.get('v2_new_bytes_reported') or 0)/1e6:.2f} MB) vs wimlib delta "
        f"{wim['v2_new_bytes']/1e6:.2f} MB [{'ok' if ok4a else 'MISSED'}], casync "
        f"{cas['v2_new_bytes']/1e6:.2f} MB (limit {FAR_BELOW_CASYNC*cas['v2_new_bytes']/1e6:.2f} MB) "
        f"[{'ok' if ok4b else 'MISSED'}]"))
    tree = meta.get("tree_2g")
    if tree and sw.get("capture_2g_rss_mib_max") is not None:
        big_enough = tree["file_bytes"] >= tree.get("min_bytes", 2_000_000_000)
        ok5 = sw["capture_2g_rss_mib_max"] < MEM_LIMIT_MIB and big_enough
        t.append(target(
            "peak memory < 1 GiB capturing a 2 GB tree", ok5,
            f"slipway capture of a {tree['file_bytes']/1e9:.3f} GB tree "
            f"({tree['files']:,} files; >= 2e9 bytes: {'yes' if big_enough else 'NO'}): peak RSS "
            f"{sw['capture_2g_rss_mib_max']:.1f} MiB (max of {sw['capture_2g_runs']} run(s); median "
            f"{sw['capture_2g_rss_mib']:.1f} MiB) vs limit {MEM_LIMIT_MIB} MiB; "
            f"{sw['capture_2g_s']:.2f} s, {sw['capture_2g_MBps']:.0f} MB/s"))
    else:
        t.append({"target": "peak memory < 1 GiB capturing a 2 GB tree", "pass": None,
                  "detail": "not measured (no capture_2g records); "
                            f"slipway capture peak RSS on v1: {sw['capture_v1_rss_mib']:.1f} MiB"})
    return runs, med, ratios, t


def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def table_rows(med, ratios):
    """Rows for the main table (list of lists of strings)."""
    head = ["tool", "size MB", "capture s", "capture MB/s", "apply s",
            "peak RSS capture / apply MiB", "v2 capture s", "v2 new MB",
            "size x", "capture x", "apply x", "v2 new x"]
    rows = []
    for tool in TOOLS:
        m = med[tool]
        r = ratios.get(tool, {})
        ratio = lambda k: "1" if tool == "slipway" else fmt(r.get(k), ".2f")
        v2 = fmt((m["v2_new_bytes"] or 0) / 1e6, ".2f")
        if tool == "tar+zstd":
            v2 += " (full archive)"
        rows.append([
            tool,
            fmt(m["size_v1_bytes"] / 1e6, ".2f"),
            fmt(m["capture_v1_s"], ".2f"),
            fmt(m["capture_v1_MBps"], ".0f"),
            fmt(m["apply_v1_s"], ".2f"),
            f"{fmt(m['capture_v1_rss_mib'], '.1f')} / {fmt(m['apply_v1_rss_mib'], '.1f')}",
            fmt(m["capture_v2_s"], ".2f"),
            v2,
            ratio("size_v1_bytes"), ratio("capture_v1_s"), ratio("apply_v1_s"),
            ratio("v2_new_bytes"),
        ])
    return head, rows


def mem_rows(med, meta):
    """Rows for the 2 GB tree table, or None when the memory step did not run."""
    tree = meta.get("tree_2g")
    if not tree or not any(med[t].get("capture_2g_s") is not None for t in TOOLS):
        return None, None
    head = ["tool (2 GB tree)", "output MB", "capture s", "capture MB/s", "CPU s",
            "peak RSS MiB (median / max)", "runs"]
    rows = []
    for tool in TOOLS:
        m = med[tool]
        if m.get("capture_2g_s") is None:
            continue
        rows.append([
            tool,
            fmt((m.get("size_2g_bytes") or 0) / 1e6, ".1f"),
            fmt(m["capture_2g_s"], ".2f"),
            fmt(m["capture_2g_MBps"], ".0f"),
            fmt(m["capture_2g_cpu_s"], ".2f"),
            f"{fmt(m['capture_2g_rss_mib'], '.1f')} / {fmt(m['capture_2g_rss_mib_max'], '.1f')}",
            str(m["capture_2g_runs"]),
        ])
    return head, rows


def text_table(head, rows):
    w = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head))]
    line = lambda cells: "  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(cells))
    return "\n".join([line(head), line(["-" * x for x in w])] + [line(r) for r in rows])


def md_cell(s):
    return str(s).replace("|", "\\|")


def md_table(head, rows):
    out = ["| " + " | ".join(map(md_cell, head)) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    out += ["| " + " | ".join(map(md_cell, r)) + " |" for r in rows]
    return "\n".join(out)


def cmd_report(args):
    with open(args.meta) as f:
        meta = json.load(f)
    recs = load_raw(args.raw)
    runs, med, ratios, targets = compute(recs, meta)
    fidelity = {r["tool"]: r["result"] for r in recs if r["kind"] == "fidelity"}
    loads = [r for r in recs if r["kind"] == "load"]
    result = {
        "schema": "slipway.bench/1",
        "generated_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": meta.get("mode"),
        "runs": len(runs),
        "machine": machine_info(meta),
        "meta": meta,
        "medians": med,
        "ratios_peer_over_slipway": ratios,
        "targets": targets,
        "fidelity_run1": fidelity,
        "load": loads,
        "raw": [r for r in recs if r["kind"] in ("time", "size", "value")],
    }
    text = json.dumps(result, indent=1, sort_keys=True) + "\n"
    for p in [args.out] + (args.json_copy or []):
        with open(p, "w") as f:
            f.write(text)
    print_summary(result)


def print_summary(res):
    head, rows = table_rows(res["medians"], res["ratios_peer_over_slipway"])
    m = res["meta"]
    print()
    print(f"slipway benchmark: medians of {res['runs']} run(s), mode {res['mode']}; "
          f"v1 root {m['roots']['v1']['file_bytes']/1e6:.1f} MB in {m['roots']['v1']['files']} files, "
          f"v2 root {m['roots']['v2']['file_bytes']/1e6:.1f} MB in {m['roots']['v2']['files']} files")
    print("(sizes: sum of regular-file bytes; 'x' columns: peer / slipway)")
    print(text_table(head, rows))
    sw = res["medians"]["slipway"]
    print(f"slipway v2: store growth {sw['v2_new_bytes']/1e6:.2f} MB, "
          f"images --json new_bytes {(sw.get('v2_new_bytes_reported') or 0)/1e6:.2f} MB")
    mh, mr = mem_rows(res["medians"], m)
    if mh:
        tr = m["tree_2g"]
        print()
        print(f"memory step: 2 GB tree {tr['file_bytes']} bytes ({tr['file_bytes']/1e9:.3f} GB) "
              f"in {tr['files']} regular files ({tr['path']})")
        print(text_table(mh, mr))
    print()
    print("targets (issue 3):")
    for t in res["targets"]:
        verdict = {True: "PASS", False: "FAIL", None: "N/A "}[t["pass"]]
        print(f"  {verdict}  {t['target']}: {t['detail']}")
    print()
    print("fidelity of apply/extract (run 1, v1; counts of differing entries):")
    for tool in TOOLS:
        if tool in res["fidelity_run1"]:
            print(f"  {tool:9} {fidelity_summary(res['fidelity_run1'][tool])}")
    print()
    for l in res["load"]:
        print(f"load ({l['when']}): {l['uptime']}")


FIDELITY_LABELS = {
    "missing": "missing", "extra": "extra", "type": "wrong type", "mode": "wrong mode",
    "uid": "wrong uid", "gid": "wrong gid", "size": "wrong size", "rdev": "wrong device number",
    "target": "wrong symlink target", "sha256": "wrong content", "xattrs": "wrong xattrs",
    "names_per_inode": "names no longer hard-linked",
    "mtime_ns": "wrong mtime", "mtime_sub_us_only": "mtime off by < 1 us",
}


def fidelity_summary(f):
    if f.get("identical"):
        return (f"all {f['entries']} entries identical (type, mode, owner, size, content, xattrs, "
                "hard links, mtime to the ns)")
    parts = [f"{v} {FIDELITY_LABELS.get(k, k)}" for k, v in sorted(f.items())
             if k not in ("entries", "identical", "examples") and v]
    return f"of {f['entries']} entries: " + ", ".join(parts) + "; all else identical"


# ---------------------------------------------------------------------- iso-report

ISO_TOOLS = ["slipway", "xorriso"]


def cmd_iso_report(args):
    recs = load_raw(args.raw)
    with open(args.meta) as f:
        meta = json.load(f)
    times = [r for r in recs if r["kind"] == "time"]
    sizes = [r for r in recs if r["kind"] == "size"]
    root = meta["root"]
    med = {}
    for tool in ISO_TOOLS:
        t = [r for r in times if r["tool"] == tool]
        sz = [r for r in sizes if r["tool"] == tool]
        m = {"runs": len(t)}
        if t:
            m["build_s"] = median([r["wall_s"] for r in t])
            m["build_s_min"] = min(r["wall_s"] for r in t)
            m["build_s_max"] = max(r["wall_s"] for r in t)
            m["build_cpu_s"] = median([r["user_s"] + r["sys_s"] for r in t])
            m["build_rss_mib"] = median([r["rss_kib"] for r in t]) / 1024
            m["build_MBps"] = root["file_bytes"] / 1e6 / m["build_s"] if m["build_s"] else None
        if sz:
            m["iso_bytes"] = median([r["bytes"] for r in sz])
            m["iso_alloc_bytes"] = median([r["alloc_bytes"] for r in sz])
        chk = [r for r in recs if r["kind"] == "check" and r["tool"] == tool]
        if chk:
            m["bsdtar_entries"] = chk[0]["bsdtar_entries"]
            m["check_media_good"] = chk[0]["check_media_good"]
        errs = [r for r in recs if r["kind"] == "error" and r["tool"] == tool]
        if errs:
            m["error"] = {k: errs[0].get(k) for k in ("run", "status", "log", "tail")}
        med[tool] = m

    sw, xo = med["slipway"], med["xorriso"]
    ratios = {}
    for k in ("build_s", "build_cpu_s", "build_rss_mib", "iso_bytes"):
        a, b = sw.get(k), xo.get(k)
        ratios[k] = (a / b) if (a is not None and b) else None
    name = "slipway iso build at least as fast as xorriso -as mkisofs -R -J, ISO no larger"
    if sw.get("build_s") is None or sw.get("iso_bytes") is None:
        err = sw.get("error")
        why = (f"exit status {err.get('status')}; {err.get('tail') or 'no output'} (log: {err.get('log')})"
               if err else "no measurement")
        target = {"target": name, "pass": None, "detail": f"slipway iso build did not run: {why}"}
    else:
        fast = sw["build_s"] <= xo["build_s"]
        small = sw["iso_bytes"] <= xo["iso_bytes"]
        target = {"target": name, "pass": fast and small, "detail":
                  f"time {sw['build_s']:.2f} s vs {xo['build_s']:.2f} s (x{ratios['build_s']:.2f}) "
                  f"[{'ok' if fast else 'MISSED'}]; size {sw['iso_bytes']:,} vs {xo['iso_bytes']:,} B "
                  f"(x{ratios['iso_bytes']:.3f}) [{'ok' if small else 'MISSED'}]"}
    mach = machine_info(meta)
    mach["versions"]["xorriso"] = run_cmd(["xorriso", "-version"]).splitlines()[0]
    result = {
        "schema": "slipway.bench-iso/1",
        "generated_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": meta.get("mode"),
        "runs": len(sorted({r["run"] for r in times if r["tool"] == "xorriso"})),
        "machine": mach,
        "meta": meta,
        "medians": med,
        "ratios_slipway_over_xorriso": ratios,
        "target": target,
        "load": [r for r in recs if r["kind"] == "load"],
        "raw": recs,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")

    head = ["tool", "build s (min-max)", "CPU s", "peak RSS MiB", "MB/s", "ISO bytes", "bsdtar entries",
            "check_media"]
    rows = []
    for tool in ISO_TOOLS:
        m = med[tool]
        if "build_s" not in m:
            rows.append([tool, "failed", "", "", "", "", "", ""])
            continue
        rows.append([tool, f"{m['build_s']:.2f} ({m['build_s_min']:.2f}-{m['build_s_max']:.2f})",
                     fmt(m["build_cpu_s"], ".2f"), fmt(m["build_rss_mib"], ".1f"), fmt(m["build_MBps"], ".0f"),
                     f"{m['iso_bytes']:,}", str(m.get("bsdtar_entries", "n/a")),
                     {True: "good", False: "BAD", None: "n/a"}[m.get("check_media_good")]])
    print()
    print(f"slipway ISO benchmark: medians of {result['runs']} run(s), mode {result['mode']}; root "
          f"{root['path']}: {root['file_bytes']/1e6:.1f} MB in {root['files']} files, {root['entries']} entries")
    print(text_table(head, rows))
    r = ratios
    print(f"slipway / xorriso: time {fmt(r['build_s'], '.2f')}, CPU {fmt(r['build_cpu_s'], '.2f')}, "
          f"peak RSS {fmt(r['build_rss_mib'], '.2f')}, size {fmt(r['iso_bytes'], '.3f')}")
    verdict = {True: "PASS", False: "FAIL", None: "N/A "}[target["pass"]]
    print(f"  {verdict}  {target['target']}: {target['detail']}")
    for l in result["load"]:
        print(f"load ({l['when']}): {l['uptime']}")


# ------------------------------------------------------------------------ changed

def cmd_changed(args):
    a = manifest(args.old)
    b = manifest(args.new)
    fields = ["type", "mode", "uid", "gid", "size", "rdev", "target", "sha256", "xattrs",
              "names_per_inode", "mtime_ns"]
    differ = {p for p, e in b.items() if p not in a or any(a[p][f] != e[f] for f in fields)}
    listed = set(differ)
    # Every name of a hard-linked file when one of its names is listed, so that tar keeps the link.
    groups = {}
    new_root = os.path.abspath(args.new)
    for p, e in b.items():
        if e["sha256"] is not None and e["names_per_inode"] > 1:
            st = os.lstat(new_root + p)
            groups.setdefault((st.st_dev, st.st_ino), []).append(p)
    for names in groups.values():
        if any(n in listed for n in names):
            listed.update(names)
    # The directory of every listed entry too: tar -x replaces a file by unlinking and creating
    # it, which changes the directory's mtime even when NEW's file was changed in place.
    listed.update({os.path.dirname(p) for p in listed if p != "/"})
    # Depth first, each directory followed by everything below it: GNU tar sets a directory's
    # mtime when extraction leaves it, so later members inside it must not come after a sibling.
    order = sorted(listed, key=lambda p: p.split("/"))
    deleted = sorted(p for p in a if p not in b and os.path.dirname(p) in b)
    rel = lambda p: "." if p == "/" else "." + p
    with open(args.list, "wb") as f:
        for p in order:
            f.write(os.fsencode(rel(p)) + b"\0")
    with open(args.deleted, "wb") as f:
        for p in deleted:
            f.write(os.fsencode(rel(p)) + b"\0")
    seen = set()
    reg_bytes = 0
    for p in order:
        e = b[p]
        if e["sha256"] is None:
            continue
        st = os.lstat(new_root + p)
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            reg_bytes += e["size"]
    res = {
        "old_entries": len(a),
        "new_entries": len(b),
        "differ_new": sum(1 for p in differ if p not in a),
        "differ_changed": sum(1 for p in differ if p in a),
        "listed": len(order),
        "listed_regular_files": sum(1 for p in order if b[p]["sha256"] is not None),
        "listed_regular_file_bytes": reg_bytes,
        "deleted_entries": sum(1 for p in a if p not in b),
        "deleted_topmost": len(deleted),
    }
    print(json.dumps(res, sort_keys=True))


# ---------------------------------------------------------------- servicing-report

# step -> (label, kind); kind "slipway" or "reference"
SERVICING_STEPS = [
    ("build_deltas", "package build --diff (deltas)", "slipway"),
    ("build_nodeltas", "package build --diff --no-deltas", "slipway"),
    ("tar_zstd19", "tar of changed entries | zstd -19 -T1", "baseline"),
    ("tar_xz9", "tar of changed entries | xz -9 -T1", "baseline"),
    ("install", "install (delta package)", "slipway"),
    ("uninstall", "uninstall", "slipway"),
    ("install_nodeltas", "install (--no-deltas package)", "slipway"),
    ("integrate_tree", "integrate --tree (delta package)", "slipway"),
    ("integrate_image", "integrate --image (delta package)", "slipway"),
    ("capture_new_ref", "ref: capture NEW as the next version", "reference"),
    ("rsync_ref", "ref: rsync -aHAX --delete NEW/ COPY/", "reference"),
    ("tarx_ref", "ref: rm deleted; zstd -dc | tar -x", "reference"),
]
SERVICING_CHECKED = {"install", "uninstall", "install_nodeltas", "integrate_tree", "integrate_image",
                     "rsync_ref", "tarx_ref"}
SERVICING_SIZES = [
    ("package_deltas", "slipway package, with deltas"),
    ("package_nodeltas", "slipway package, --no-deltas"),
    ("tar_zstd19", "tar of changed entries, zstd -19"),
    ("tar_xz9", "tar of changed entries, xz -9"),
]
SERVICING_RATIOS = [
    ("build_deltas", "build_nodeltas", "build with deltas / without"),
    ("install", "install_nodeltas", "install of the delta package / of the --no-deltas package"),
    ("install", "rsync_ref", "install / rsync reference"),
    ("install", "tarx_ref", "install / tar -x reference"),
    ("integrate_tree", "install", "integrate --tree / install"),
    ("uninstall", "install", "uninstall / install"),
    ("integrate_image", "capture_new_ref", "integrate --image / capture of NEW"),
]


def cmd_servicing_report(args):
    recs = load_raw(args.raw)
    with open(args.meta) as f:
        meta = json.load(f)
    times = [r for r in recs if r["kind"] == "time"]
    syncs = [r for r in recs if r["kind"] == "sync"]
    sizes = [r for r in recs if r["kind"] == "size"]
    reports = [r for r in recs if r["kind"] == "report"]
    checks = [r for r in recs if r["kind"] == "check"]
    runs = sorted({r["run"] for r in times})
    med = {}
    for step, label, kind in SERVICING_STEPS:
        t = [r for r in times if r["step"] == step]
        if not t:
            continue
        w = [r["wall_s"] for r in t]
        sy = [r["wall_s"] for r in syncs if r["step"] == step]
        med[step] = {
            "label": label, "kind": kind, "runs": len(t),
            "wall_s": median(w), "wall_s_min": min(w), "wall_s_max": max(w),
            "cpu_s": median([r["user_s"] + r["sys_s"] for r in t]),
            "user_s": median([r["user_s"] for r in t]),
            "sys_s": median([r["sys_s"] for r in t]),
            "rss_mib": median([r["rss_kib"] for r in t]) / 1024,
            "rss_mib_max": max(r["rss_kib"] for r in t) / 1024,
            "sync_s": median(sy) if sy else None,
            "load1": median([r.get("load1") for r in t]),
            "steal_s": median([r.get("steal_s") for r in t]),
            "checked_runs": sum(1 for c in checks if c["step"] == step and c["ok"]),
        }
        m = med[step]
        m["wall_plus_sync_s"] = median([r["wall_s"] + next((x["wall_s"] for x in syncs if x["step"] == step
                                                            and x["run"] == r["run"]), 0) for r in t])
    size_med = {}
    for key, label in SERVICING_SIZES:
        v = [r["bytes"] for r in sizes if r["key"] == key]
        if v:
            size_med[key] = {"label": label, "bytes": median(v), "min": min(v), "max": max(v)}
    base = size_med.get("package_deltas", {}).get("bytes")
    for key, m in size_med.items():
        m["x_package_deltas"] = m["bytes"] / base if base else None
    build_report = {}
    for step in ("build_deltas", "build_nodeltas"):
        rs = [r["report"] for r in reports if r["step"] == step]
        if rs:
            build_report[step] = rs[0]
            build_report[step + "_same_in_every_run"] = all(
                {k: v for k, v in r.items()} == rs[0] for r in rs)
    ratios = {}
    for a, b, label in SERVICING_RATIOS:
        if a in med and b in med and med[b]["wall_s"]:
            ratios[f"{a}/{b}"] = {"label": label, "wall": med[a]["wall_s"] / med[b]["wall_s"],
                                  "wall_plus_sync": med[a]["wall_plus_sync_s"] / med[b]["wall_plus_sync_s"]}
    mach = machine_info(meta)
    first = lambda s: s.splitlines()[0] if s else s
    for name, argv in (("rsync", ["rsync", "--version"]), ("xz", ["xz", "--version"]),
                       ("bsdtar", ["bsdtar", "--version"])):
        mach["versions"][name] = first(run_cmd(argv))
    for k in ("wimlib-imagex", "casync"):
        mach["versions"].pop(k, None)
    result = {
        "schema": "slipway.bench-servicing/1",
        "generated_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": meta.get("mode"),
        "runs": len(runs),
        "machine": mach,
        "meta": meta,
        "medians": med,
        "sizes": size_med,
        "build_report": build_report,
        "ratios": ratios,
        "checks": {"passed": sum(1 for c in checks if c["ok"]), "failed": sum(1 for c in checks if not c["ok"])},
        "load": [r for r in recs if r["kind"] == "load"],
        "raw": recs,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")

    ch = meta.get("changed", {})
    roots = meta["roots"]
    print()
    print(f"slipway servicing benchmark: medians of {len(runs)} run(s), mode {result['mode']}, "
          f"{mach['nproc']} CPUs, slipway {meta.get('git_rev')}{' (dirty)' if meta.get('git_dirty') else ''}")
    print(f"OLD {roots['old']['path']}: {roots['old']['file_bytes']/1e6:.1f} MB in {roots['old']['files']:,} files; "
          f"NEW: {roots['new']['file_bytes']/1e6:.1f} MB in {roots['new']['files']:,} files (extra packages: "
          f"less,{meta.get('extra_packages')})")
    print(f"NEW has {ch.get('differ_new', 0):,} entries OLD lacks, {ch.get('differ_changed', 0):,} that differ "
          f"and lacks {ch.get('deleted_entries', 0):,} of OLD's; the tar baseline holds {ch.get('listed', 0):,} entries "
          f"({ch.get('listed_regular_files', 0):,} regular files, {ch.get('listed_regular_file_bytes', 0)/1e6:.1f} MB)")
    br = build_report.get("build_deltas")
    if br:
        print(f"package report (deltas): ops {br.get('ops'):,}, deltas {br.get('deltas'):,}, added {br.get('added')}, "
              f"replaced {br.get('replaced')}, deleted {br.get('deleted')}, content {br.get('content_bytes', 0)/1e6:.1f} MB, "
              f"payload {br.get('payload_bytes', 0)/1e6:.2f} MB (full files would be {br.get('full_payload_bytes', 0)/1e6:.2f} MB)")
    print()
    head = ["size", "bytes", "MB", "x slipway (deltas)"]
    rows = [[m["label"], f"{int(m['bytes']):,}", f"{m['bytes']/1e6:.2f}", fmt(m["x_package_deltas"], ".2f")]
            for key, m in size_med.items()]
    if rows:
        print(text_table(head, rows))
        print()
    has_steal = any(m.get("steal_s") is not None for m in med.values())
    head = ["step", "wall s (min-max)", "+ sync s", "CPU s", "peak RSS MiB", "checked", "load before"]
    head += ["stolen s"] if has_steal else []
    rows = []
    for step, label, kind in SERVICING_STEPS:
        m = med.get(step)
        if not m:
            continue
        chk = f"{m['checked_runs']}/{m['runs']}" if step in SERVICING_CHECKED else "-"
        rows.append([label, f"{m['wall_s']:.2f} ({m['wall_s_min']:.2f}-{m['wall_s_max']:.2f})",
                     fmt(m["sync_s"], ".2f"), f"{m['cpu_s']:.2f}", f"{m['rss_mib']:.1f}", chk,
                     fmt(m["load1"], ".2f")] + ([fmt(m["steal_s"], ".2f")] if has_steal else []))
    print(text_table(head, rows))
    print()
    print("ratios of medians (wall s; in brackets wall + the sync after it):")
    for k, r in ratios.items():
        print(f"  {r['label']}: {r['wall']:.2f} [{r['wall_plus_sync']:.2f}]")
    print(f"tree checks: {result['checks']['passed']} passed, {result['checks']['failed']} failed")
    for l in result["load"]:
        print(f"load ({l['when']}): {l['uptime']}")


# ------------------------------------------------------------ sysprep-check and -report

# The rule of slipway's `logfiles` operation (docs/generalize.md): a rotated log ends in one
# of these, or in .N, or in -DDDDDDDD (8-10 digits).
ROTATED_SUFFIXES = (".gz", ".xz", ".bz2", ".zst", ".lz4", ".lzma", ".Z", ".old", ".bak")
UTMP_LOGS = ("var/log/wtmp", "var/log/btmp", "var/log/lastlog", "var/log/faillog")

# key, label, expected: slipway generalize must leave an expected item "ok" (else exit 1);
# the others are reported for information.
SYSPREP_ITEMS = [
    ("machine_id", "/etc/machine-id", True),
    ("dbus_machine_id", "/var/lib/dbus/machine-id", True),
    ("ssh_host_keys", "SSH host keys /etc/ssh/ssh_host_*", True),
    ("ssh_keys_first_boot", "new SSH host keys at first boot", True),
    ("random_seed", "/var/lib/systemd/random-seed", True),
    ("credential_secret", "/var/lib/systemd/credential.secret", True),
    ("cloud_instances", "/var/lib/cloud/instances", True),
    ("bash_history", "/root/.bash_history", True),
    ("dhcp_lease", "DHCP lease /var/lib/dhcp/*.leases", True),
    ("rotated_logs", "rotated logs in /var/log", True),
    ("live_logs", "live logs in /var/log (non-empty)", True),
    ("journal", "/var/log/journal/<machine-id>/", True),
    ("hostname", "/etc/hostname", False),
    ("utmp", "wtmp, btmp, lastlog, faillog", False),
    ("root_ssh", "/root/.ssh (access, not identity)", False),
    ("fsck", "e2fsck -fn of the image", False),
]


def is_rotated(name):
    if name.endswith(ROTATED_SUFFIXES):
        return True
    _, dot, ext = name.rpartition(".")
    if dot and ext.isdigit():
        return True
    _, dash, ext = name.rpartition("-")
    return bool(dash) and ext.isdigit() and 8 <= len(ext) <= 10


def read_in(root, rel):
    """Content of ROOT/REL as bytes if it is a regular file (never through a symlink), else None."""
    p = os.path.join(root, rel)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    with open(p, "rb") as f:
        return f.read()


def lexists_in(root, rel):
    return os.path.lexists(os.path.join(root, rel))


def logs_of(root):
    """{relative path: size} of the regular files under ROOT/var/log, not through symlinks."""
    out = {}
    top = os.path.join(root, "var/log")
    if os.path.islink(top) or not os.path.isdir(top):
        return out
    for dirpath, _, filenames in os.walk(top):
        for n in filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                out[os.path.relpath(p, root)] = st.st_size
    return out


def host_keys_of(root):
    d = os.path.join(root, "etc/ssh")
    return sorted(n for n in os.listdir(d) if n.startswith("ssh_host_")) if os.path.isdir(d) else []


def first_boot_keygen(root):
    """What in ROOT makes SSH host keys when there are none (text), or None."""
    units = ["etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"]
    wants = "etc/systemd/system/multi-user.target.wants/slipway-ssh-hostkeys.service"
    if lexists_in(root, "etc/systemd/system/slipway-ssh-hostkeys.service"):
        return "slipway-ssh-hostkeys.service" + (", enabled" if lexists_in(root, wants) else " (NOT enabled)")
    for name in ("sshd-keygen@.service", "sshd-keygen.target", "sshdgenkeys.service"):
        if any(lexists_in(root, f"{u}/{name}") for u in units):
            return name
    for u in units:
        for name in ("ssh.service", "sshd.service"):
            c = read_in(root, f"{u}/{name}")
            if c and b"ssh-keygen" in c:
                return f"{name} runs ssh-keygen"
    return None


def baseline_items(root):
    """What ROOT holds of each identity item, before any tool ran (the table's first column)."""
    items = {}

    def put(key, text):
        items[key] = {"text": text, "ok": None, "detail": None}

    def size(rel):
        c = read_in(root, rel)
        return "none" if c is None else f"{len(c)} B"

    mid = (read_in(root, "etc/machine-id") or b"").strip().decode(errors="replace")
    put("machine_id", f"a real ID `{mid[:8]}…`" if mid else "none")
    put("dbus_machine_id", size("var/lib/dbus/machine-id"))
    put("ssh_host_keys", f"{len(host_keys_of(root))} files")
    put("ssh_keys_first_boot", f"({first_boot_keygen(root) or 'no generator in the image'})")
    put("random_seed", size("var/lib/systemd/random-seed"))
    put("credential_secret", size("var/lib/systemd/credential.secret"))
    inst = os.path.join(root, "var/lib/cloud/instances")
    put("cloud_instances", ", ".join(sorted(os.listdir(inst))) if os.path.isdir(inst) else "none")
    put("bash_history", size("root/.bash_history"))
    d = os.path.join(root, "var/lib/dhcp")
    put("dhcp_lease", ", ".join(sorted(n for n in os.listdir(d) if n.endswith(".leases")))
        if os.path.isdir(d) else "none")
    logs = logs_of(root)
    jr = lambda p: p.startswith("var/log/journal/")
    rot = sorted(p[8:] for p in logs if not jr(p) and is_rotated(os.path.basename(p)))
    put("rotated_logs", f"{len(rot)}: {', '.join(rot)}")
    live = [p for p in logs if not jr(p) and not is_rotated(os.path.basename(p)) and logs[p] > 0]
    put("live_logs", f"{len(live)} ({sum(logs[p] for p in live) / 1e3:.0f} kB)")
    j = [p for p in logs if jr(p)]
    put("journal", f"{len(j)} file{'' if len(j) == 1 else 's'}")
    hn = read_in(root, "etc/hostname")
    put("hostname", f"`{hn.strip().decode(errors='replace')}`" if hn is not None else "none")
    u = [p for p in UTMP_LOGS if lexists_in(root, p)]
    put("utmp", f"{len(u)} files")
    put("root_ssh", "present" if lexists_in(root, "root/.ssh") else "none")
    put("fsck", "-")
    return items


def sysprep_items(root, before, fsck):
    """The identity items of ROOT, each {text, ok, detail}; ok None = for information."""
    if before and os.path.samefile(root, before):
        return baseline_items(root)
    items = {}

    def put(key, text, ok=None, detail=None):
        items[key] = {"text": text, "ok": ok, "detail": detail}

    mid = read_in(root, "etc/machine-id")
    mid0 = read_in(before, "etc/machine-id") if before else None
    if mid is None:
        put("machine_id", "missing: first boot, each clone makes its own ID", True)
    else:
        s = mid.strip().decode(errors="replace")
        if s == "uninitialized":
            put("machine_id", "`uninitialized`: first boot, each clone makes its own ID", True)
        elif s == "":
            put("machine_id", "empty: a new ID each boot, but systemd sees no first boot", True)
        elif mid0 is not None and mid.strip() == mid0.strip():
            put("machine_id", f"the original ID `{s[:8]}…`: every clone shares it", False, s)
        else:
            put("machine_id", f"a new fixed ID `{s[:8]}…`: every clone of the image shares it", False, s)

    rel = "var/lib/dbus/machine-id"
    p = os.path.join(root, rel)
    if not os.path.lexists(p):
        put("dbus_machine_id", "removed", True)
    elif os.path.islink(p):
        put("dbus_machine_id", f"a symlink to {os.readlink(p)}", True)
    else:
        c = read_in(root, rel) or b""
        c0 = read_in(before, rel) if before else None
        if c.strip() == b"":
            put("dbus_machine_id", "emptied (0 B)", True)
        elif c0 is not None and c.strip() == c0.strip():
            put("dbus_machine_id", "kept: the original ID", False)
        else:
            put("dbus_machine_id", "a new fixed ID: every clone shares it", False, c.strip().decode(errors="replace"))

    keys, keys0 = host_keys_of(root), host_keys_of(before) if before else []
    if not keys:
        put("ssh_host_keys", f"removed ({len(keys0)} files)" if keys0 else "none", True)
    else:
        put("ssh_host_keys", f"{len(keys)} files left", False, keys)

    gen = first_boot_keygen(root)
    if keys:
        put("ssh_keys_first_boot", "not needed: the keys are still there", None)
    elif gen:
        put("ssh_keys_first_boot", f"yes: {gen}", True)
    else:
        put("ssh_keys_first_boot", "no: nothing in the image makes them, and Debian's ssh.service "
            "does not (sshd will not start)", False)

    for key, rel in (("random_seed", "var/lib/systemd/random-seed"),
                     ("credential_secret", "var/lib/systemd/credential.secret")):
        c = read_in(root, rel)
        c0 = read_in(before, rel) if before else None
        if not lexists_in(root, rel):
            put(key, "removed" if c0 is not None else "none", True)
        elif c is not None and c0 is not None and c == c0:
            put(key, f"kept (same {len(c)} B): every clone shares it", False)
        else:
            n = len(c) if c is not None else 0
            put(key, f"new random bytes ({n} B) written into the image: every clone shares them", False)

    inst = os.path.join(root, "var/lib/cloud/instances")
    left = sorted(os.listdir(os.path.join(root, "var/lib/cloud"))) if os.path.isdir(
        os.path.join(root, "var/lib/cloud")) else None
    if os.path.isdir(inst) and os.listdir(inst):
        put("cloud_instances", f"kept ({', '.join(sorted(os.listdir(inst)))})", False, left)
    else:
        rest = "" if not left else f" (/var/lib/cloud keeps: {', '.join(left)})"
        put("cloud_instances", ("emptied" if os.path.isdir(inst) else "removed") + rest, True, left)

    if lexists_in(root, "root/.bash_history"):
        put("bash_history", "kept", False)
    else:
        put("bash_history", "removed" if before and lexists_in(before, "root/.bash_history") else "none", True)

    d = os.path.join(root, "var/lib/dhcp")
    d0 = os.path.join(before, "var/lib/dhcp") if before else None
    leases = sorted(n for n in os.listdir(d) if n.endswith(".leases")) if os.path.isdir(d) else []
    leases0 = sorted(n for n in os.listdir(d0) if n.endswith(".leases")) if d0 and os.path.isdir(d0) else []
    put("dhcp_lease", f"kept ({', '.join(leases)})" if leases else
        (f"removed ({', '.join(leases0)})" if leases0 else "none"), not leases)

    logs, logs0 = logs_of(root), logs_of(before) if before else {}
    jr = lambda p: p.startswith("var/log/journal/")
    rot0 = [p for p in logs0 if not jr(p) and is_rotated(os.path.basename(p))]
    rot = [p for p in logs if not jr(p) and is_rotated(os.path.basename(p))]
    put("rotated_logs", f"{len(rot0) - len([p for p in rot0 if p in logs])} of {len(rot0)} removed"
        + (f"; left: {', '.join(p[8:] for p in rot)}" if rot else ""), not rot, rot)
    live0 = [p for p in logs0 if not jr(p) and not is_rotated(os.path.basename(p)) and logs0[p] > 0]
    gone = [p for p in live0 if p not in logs]
    emptied = [p for p in live0 if logs.get(p) == 0]
    full = [p for p in logs if not jr(p) and not is_rotated(os.path.basename(p)) and logs[p] > 0]
    parts = []
    if emptied:
        parts.append(f"{len(emptied)} emptied in place")
    if gone:
        parts.append(f"{len(gone)} removed")
    if full:
        parts.append(f"{len(full)} still hold data")
    put("live_logs", f"{len(live0)} before: " + ", ".join(parts or ["unchanged"]), not full,
        {"emptied": emptied, "removed": gone, "non_empty": full})
    j, j0 = [p for p in logs if jr(p)], [p for p in logs0 if jr(p)]
    jd = os.path.join(root, "var/log/journal")
    put("journal", (f"{len(j)} of {len(j0)} files left" if j else
                    f"emptied ({len(j0)} file{'' if len(j0) == 1 else 's'} removed)"
                    + ("" if os.path.isdir(jd) else ", directory removed")),
        not j, j)

    hn = read_in(root, "etc/hostname")
    hn0 = read_in(before, "etc/hostname") if before else None
    if hn is None:
        put("hostname", "removed")
    else:
        s = hn.strip().decode(errors="replace")
        put("hostname", f"`{s}`" + (" (unchanged)" if hn0 is not None and hn == hn0 else ""))

    u = [p for p in UTMP_LOGS if lexists_in(root, p)]
    u0 = [p for p in UTMP_LOGS if before and lexists_in(before, p)]
    put("utmp", "all kept (empty)" if len(u) == len(u0) else
        f"{len(u0) - len(u)} of {len(u0)} removed" + (f" (kept: {', '.join(p[8:] for p in u)})" if u else ""))
    put("root_ssh", "kept" if lexists_in(root, "root/.ssh") else "removed")
    put("fsck", fsck or "n/a (a directory)")
    return items


def cmd_sysprep_check(args):
    items = sysprep_items(args.root, args.before, args.fsck)
    rec = {"kind": "check", "run": args.run, "step": args.step, "items": items}
    print(json.dumps(rec, sort_keys=True))
    if args.expect:
        bad = [(k, items[k]["text"]) for k, _, want in SYSPREP_ITEMS if want and items[k]["ok"] is not True]
        for k, t in bad:
            print(f"sysprep-check: {args.step}: {k}: {t}", file=sys.stderr)
        if bad:
            sys.exit(1)


def cmd_specialize_check(args):
    r = args.root
    items = {}
    hn = (read_in(r, "etc/hostname") or b"").strip().decode(errors="replace")
    items["hostname"] = {"ok": hn == args.hostname, "text": hn}
    pw = [l.split(":") for l in (read_in(r, "etc/passwd") or b"").decode().splitlines()]
    user = next((f for f in pw if f[0] == args.user), None)
    items["user"] = {"ok": user is not None and user[5] == f"/home/{args.user}",
                     "text": ":".join(user) if user else "missing"}
    sh = [l.split(":") for l in (read_in(r, "etc/shadow") or b"").decode().splitlines()]
    sline = next((f for f in sh if f[0] == args.user), None)
    items["password_hash"] = {"ok": sline is not None and sline[1] == args.hash,
                              "text": "the answer file's hash" if sline and sline[1] == args.hash else "wrong"}
    ak_path = os.path.join(r, "home", args.user, ".ssh/authorized_keys")
    ak = read_in(r, f"home/{args.user}/.ssh/authorized_keys") or b""
    with open(args.pubkey, "rb") as f:
        pub = f.read().strip()
    ok = pub in ak and user is not None and os.lstat(ak_path).st_uid == int(user[2])
    items["authorized_keys"] = {"ok": ok, "text": "the bench key, owned by the user" if ok else "wrong"}
    nd = os.path.join(r, "etc/systemd/network")
    nets = [n for n in os.listdir(nd) if n.endswith(".network")] if os.path.isdir(nd) else []
    dhcp = any(b"DHCP=" in (read_in(r, f"etc/systemd/network/{n}") or b"") for n in nets)
    items["network"] = {"ok": dhcp, "text": ", ".join(nets) or "no .network file"}
    lt = os.path.join(r, "etc/localtime")
    tz = os.readlink(lt) if os.path.islink(lt) else "not a symlink"
    items["timezone"] = {"ok": tz.endswith("/" + args.timezone), "text": tz}
    keys = [k for k in host_keys_of(r) if k.endswith("_key")]
    items["ssh_host_keys"] = {"ok": len(keys) > 0, "text": f"{len(keys)} private keys made offline"}
    b = os.path.join(r, "usr/local/sbin/slipway")
    bsize = os.lstat(b).st_size if os.path.lexists(b) else None
    items["slipway_binary"] = {"ok": bsize == os.stat(args.binary).st_size,
                               "text": f"{bsize} B" if bsize is not None else "missing"}
    fb = lexists_in(r, "etc/systemd/system/multi-user.target.wants/slipway-firstboot.service")
    items["firstboot_unit"] = {"ok": fb, "text": "enabled" if fb else "missing"}
    mid = (read_in(r, "etc/machine-id") or b"").strip()
    items["machine_id"] = {"ok": mid == b"uninitialized", "text": mid.decode(errors="replace")}
    rec = {"kind": "check", "run": args.run, "step": args.step, "items": items}
    print(json.dumps(rec, sort_keys=True))
    bad = [(k, v["text"]) for k, v in items.items() if not v["ok"]]
    for k, t in bad:
        print(f"specialize-check: {args.step}: {k}: {t}", file=sys.stderr)
    if bad:
        sys.exit(1)


SYSPREP_STEPS = [
    ("virt_sysprep_cold", "virt-sysprep, cold (builds the appliance)"),
    ("virt_sysprep", "virt-sysprep, warm (cached appliance)"),
    ("mount_img", "mount copy.img (loop device; not compared)"),
    ("slipway_generalize_img", "slipway generalize MOUNT"),
    ("umount_img", "sync + umount MOUNT"),
    ("slipway_generalize_img_umount", "slipway generalize MOUNT + sync + umount"),
    ("slipway_generalize_dir", "slipway generalize DIR"),
    ("slipway_specialize_dir", "slipway specialize DIR (answer file)"),
]
SYSPREP_RATIOS = [
    ("virt_sysprep", "slipway_generalize_img", "virt-sysprep warm / slipway generalize (image)"),
    ("virt_sysprep", "slipway_generalize_img_umount",
     "virt-sysprep warm / slipway generalize + sync + umount (image)"),
    ("virt_sysprep_cold", "slipway_generalize_img_umount",
     "virt-sysprep cold / slipway generalize + sync + umount (image)"),
    ("virt_sysprep", "slipway_generalize_dir", "virt-sysprep warm / slipway generalize (directory)"),
]
# columns of the correctness table: (step whose checks are shown, heading)
SYSPREP_COLUMNS = [
    ("before", "prepared root (before)"),
    ("slipway_generalize_img", "slipway generalize (image)"),
    ("slipway_generalize_dir", "slipway generalize (directory)"),
    ("virt_sysprep", "virt-sysprep"),
]


def cmd_sysprep_report(args):
    recs = load_raw(args.raw)
    with open(args.meta) as f:
        meta = json.load(f)
    times = [r for r in recs if r["kind"] == "time"]
    syncs = {(r["run"], r["step"]): r["wall_s"] for r in recs if r["kind"] == "sync"}
    checks = [r for r in recs if r["kind"] == "check"]
    runs = sorted({r["run"] for r in times if r["step"] != "virt_sysprep_cold"})
    # generalize + umount of the image, per run, as a step of its own
    by = {(r["run"], r["step"]): r for r in times}
    for run in runs:
        g, u = by.get((run, "slipway_generalize_img")), by.get((run, "umount_img"))
        if g and u:
            times.append({"kind": "time", "run": run, "step": "slipway_generalize_img_umount",
                          "wall_s": g["wall_s"] + u["wall_s"], "user_s": g["user_s"] + u["user_s"],
                          "sys_s": g["sys_s"] + u["sys_s"], "rss_kib": max(g["rss_kib"], u["rss_kib"]),
                          "load1": g.get("load1"), "steal_s": g.get("steal_s", 0) + u.get("steal_s", 0)})
    med = {}
    for step, label in SYSPREP_STEPS:
        t = [r for r in times if r["step"] == step]
        if not t:
            continue
        w = [r["wall_s"] for r in t]
        sy = [syncs[(r["run"], step)] for r in t if (r["run"], step) in syncs]
        med[step] = {
            "label": label, "runs": len(t),
            "wall_s": median(w), "wall_s_min": min(w), "wall_s_max": max(w),
            "cpu_s": median([r["user_s"] + r["sys_s"] for r in t]),
            "rss_mib": median([r["rss_kib"] for r in t]) / 1024,
            "sync_s": median(sy) if sy else None,
            "wall_plus_sync_s": median([r["wall_s"] + syncs.get((r["run"], step), 0) for r in t]),
            "load1": median([r.get("load1") for r in t]),
            "steal_s": median([r.get("steal_s") for r in t]),
        }
    ratios = {}
    for a, b, label in SYSPREP_RATIOS:
        if a in med and b in med and med[b]["wall_s"]:
            ratios[f"{a}/{b}"] = {"label": label, "wall": med[a]["wall_s"] / med[b]["wall_s"],
                                  "wall_plus_sync": med[a]["wall_plus_sync_s"] / med[b]["wall_plus_sync_s"]}
    # correctness: the checks of the first run of each step; does every run agree?
    gen = {}
    for step, _ in SYSPREP_COLUMNS:
        cs = sorted((c for c in checks if c["step"] == step), key=lambda c: c["run"])
        if not cs:
            continue
        texts = lambda c: {k: v["text"] for k, v in c["items"].items() if k != "machine_id"}
        gen[step] = {"items": cs[0]["items"], "run": cs[0]["run"], "checked_runs": len(cs),
                     "same_in_every_run": all(texts(c) == texts(cs[0]) for c in cs),
                     "machine_ids": [c["items"]["machine_id"].get("detail") for c in cs]}
    phases = {}
    for step in ("virt_sysprep_cold", "virt_sysprep"):
        ph = [r for r in recs if r["kind"] == "phases" and r["step"] == step]
        if ph:
            phases[step] = {"runs": len(ph), "first_op_s": median([r["first_op_s"] for r in ph]),
                            "operations_s": median([r["last_stamp_s"] - r["first_op_s"] for r in ph]),
                            "last_stamp_s": median([r["last_stamp_s"] for r in ph])}
    cold = next((c for c in checks if c["step"] == "virt_sysprep_cold"), None)
    if cold:
        gen["virt_sysprep_cold"] = {"items": cold["items"], "run": cold["run"], "checked_runs": 1,
                                    "same_in_every_run": True,
                                    "machine_ids": [cold["items"]["machine_id"].get("detail")]}
    spec = [c for c in checks if c["step"] == "slipway_specialize_dir"]
    mach = machine_info(meta)
    for k in ("wimlib-imagex", "casync", "zstd", "tar", "debootstrap"):
        mach["versions"].pop(k, None)
    first = lambda s: s.splitlines()[0] if s else s
    for name, argv in (("virt-sysprep", ["virt-sysprep", "--version"]),
                       ("qemu-system-x86_64", ["qemu-system-x86_64", "--version"]),
                       ("supermin", ["supermin", "--version"]),
                       ("e2fsprogs", ["dpkg-query", "-W", "-f=${Version}", "e2fsprogs"]),
                       ("libguestfs-tools", ["dpkg-query", "-W", "-f=${Version}", "libguestfs-tools"])):
        mach["versions"][name] = first(run_cmd(argv))

    head = ["step", "wall s (min-max)", "+ sync s", "CPU s", "peak RSS MiB", "runs"]
    rows = []
    for step, label in SYSPREP_STEPS:
        m = med.get(step)
        if m:
            w = lambda x: fmt(x, ".2f" if x is not None and x >= 1 else ".3f")
            rows.append([label, f"{w(m['wall_s'])} ({w(m['wall_s_min'])}-{w(m['wall_s_max'])})",
                         w(m["sync_s"]), f"{m['cpu_s']:.2f}", f"{m['rss_mib']:.1f}", str(m["runs"])])
    rhead = ["ratio of medians", "wall", "wall + sync"]
    x = lambda v: f"{v:.0f}" if v >= 100 else f"{v:.1f}"
    rrows = [[r["label"], x(r["wall"]), x(r["wall_plus_sync"])] for r in ratios.values()]
    cols = [(s, h) for s, h in SYSPREP_COLUMNS if s in gen]
    mark = lambda it: ("" if it["ok"] is None else ("✓ " if it["ok"] else "✗ ")) + it["text"]
    chead = ["item"] + [h for _, h in cols]
    crows = [[label] + [(it["text"] if s == "before" else mark(it)) if (it := gen[s]["items"].get(k)) else "-"
                        for s, _ in cols] for k, label, _ in SYSPREP_ITEMS]
    shead = ["specialize check", "result"]
    srows = [[k, ("✓ " if v["ok"] else "✗ ") + v["text"]] for k, v in sorted(spec[0]["items"].items())] if spec else []

    result = {
        "schema": "slipway.bench-sysprep/1",
        "generated_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": meta.get("mode"),
        "runs": len(runs),
        "machine": mach,
        "meta": meta,
        "medians": med,
        "ratios": ratios,
        "virt_sysprep_phases": phases,
        "correctness": gen,
        "specialize_checks": {"passed": sum(all(v["ok"] for v in c["items"].values()) for c in spec),
                              "runs": len(spec), "first": spec[0]["items"] if spec else None},
        "markdown": {"times": md_table(head, rows), "ratios": md_table(rhead, rrows),
                     "correctness": md_table(chead, crows).replace("|---:", "|---"),
                     "specialize": md_table(shead, srows).replace("|---:", "|---")},
        "load": [r for r in recs if r["kind"] == "load"],
        "raw": recs,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")

    root = meta.get("root", {})
    print()
    print(f"slipway sysprep benchmark: medians of {len(runs)} run(s), mode {result['mode']}, "
          f"{mach['nproc']} CPUs, slipway {meta.get('git_rev')}{' (dirty)' if meta.get('git_dirty') else ''}, "
          f"{mach['versions']['virt-sysprep']} ({meta.get('guestfs', {}).get('accel', '?')})")
    if root:
        print(f"data: {root.get('path')} + identity: {root.get('file_bytes', 0)/1e6:.1f} MB in "
              f"{root.get('files', 0):,} files; image {meta.get('image', {}).get('size')} ext4")
    print()
    print(text_table(head, rows))
    print()
    print(text_table(rhead, rrows))
    for step, ph in phases.items():
        print(f"{step}: appliance launch + inspection {ph['first_op_s']:.1f} s, operations "
              f"{ph['operations_s']:.1f} s (virt-sysprep's own stamps, median of {ph['runs']})")
    print()
    print(text_table(chead, crows))
    for s, h in cols:
        g = gen[s]
        if s != "before":
            print(f"  {h}: checked in {g['checked_runs']} run(s), "
                  f"{'the same' if g['same_in_every_run'] else 'NOT the same'} in every run"
                  + (f"; machine IDs written: {', '.join(x or '-' for x in g['machine_ids'])}"
                     if any(g["machine_ids"]) else ""))
    if "virt_sysprep_cold" in gen:
        print(f"  virt-sysprep cold run: machine ID written: {gen['virt_sysprep_cold']['machine_ids'][0] or '-'}")
    if srows:
        print()
        print(text_table(shead, srows))
        print(f"  specialize checks passed in {result['specialize_checks']['passed']} of {len(spec)} run(s)")
    for l in result["load"]:
        print(f"load ({l['when']}): {l['uptime']}")


# ----------------------------------------------------------------------- markdown

def cmd_markdown(args):
    with open(args.results) as f:
        res = json.load(f)
    mach, meta, med = res["machine"], res["meta"], res["medians"]
    head, rows = table_rows(med, res["ratios_peer_over_slipway"])
    v1, v2 = meta["roots"]["v1"], meta["roots"]["v2"]
    L = []
    a = L.append
    a("# Benchmarks: slipway against wimlib, tar + zstd and casync")
    a("")
    a("<!-- Generated by bench/bench.py markdown from bench/results/latest.json. "
      "Do not edit by hand: rerun bench/run.sh. -->")
    a("")
    a("## How to rerun")
    a("")
    a("```sh")
    a("sudo bench/run.sh            # 3 runs (default); --runs N for more; --quick for a 1-run smoke test")
    a("```")
    a("")
    a("It needs root (for the loop-mounted scratch filesystem, debootstrap, and to keep owners on "
      "apply). It installs missing tools with `scripts/install-deps.sh`, builds slipway with "
      "`cargo build --release`, builds and caches the two Debian roots, runs every tool, prints the "
      "table and the targets, writes `bench/results/latest.json` (plus a timestamped copy) and "
      "regenerates this page. A full run takes a few minutes once the roots and the 2 GB tree are "
      "cached (building the tree takes about half a minute, once).")
    a("")
    a(f"## Latest results ({res['generated_utc']}, medians of {res['runs']} "
      f"run{'s' if res['runs'] != 1 else ''}, slipway at commit {meta.get('git_rev')}"
      f"{' plus uncommitted changes (outside bench/ and docs/)' if meta.get('git_dirty') else ''})")
    a("")
    a(f"Trees: **v1** = `debootstrap --variant=minbase bookworm`, {v1['file_bytes']/1e6:.1f} MB in "
      f"{v1['files']:,} regular files; **v2** = an independent `debootstrap --variant=minbase "
      f"--include=less,nano,curl,ca-certificates bookworm`, {v2['file_bytes']/1e6:.1f} MB in "
      f"{v2['files']:,} files. Cached `.deb`s are removed from both.")
    a("")
    a(md_table(head, rows))
    a("")
    sw = med["slipway"]
    a(f"slipway's own figure for v2 (`images --json`, `new_bytes` of the second version): "
      f"{(sw.get('v2_new_bytes_reported') or 0)/1e6:.2f} MB; the table shows the store's growth in "
      f"file bytes ({sw['v2_new_bytes']/1e6:.2f} MB), which also counts the record and index files.")
    a("")
    mh, mr = mem_rows(med, meta)
    if mh:
        tr = meta["tree_2g"]
        a("### Memory: capturing a 2 GB tree")
        a("")
        a(f"The tree (`{os.path.relpath(tr['path'], os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}`, "
          f"built once and cached): **{tr['file_bytes']:,} bytes** ({tr['file_bytes']/1e9:.3f} GB) of "
          f"regular-file data in {tr['files']:,} files: 4 copies (`cp -a`) of the v1 root, two large "
          "files of 300,000,000 and 262,144,000 bytes, and files of 1.00-1.10 MB, 100 per directory, "
          "until the tree holds at least 2.05e9 bytes. The generated data is deterministic "
          f"pseudo-random ({tr.get('generator')}; incompressible, no two files alike): "
          f"{(tr['file_bytes'] - 4 * v1['file_bytes'])/1e9:.2f} GB that no tool can compress, plus "
          f"4 x {v1['file_bytes']/1e6:.1f} MB of OS files that a deduplicating store keeps once. Each run "
          "captures it "
          "into a fresh store (and, for comparison, runs `tar | zstd -3 -T0` on it); "
          f"medians of {max(int(r[-1]) for r in mr)} runs, peak RSS also as the maximum over the runs, "
          "which is what the target is judged on.")
        a("")
        a(md_table(mh, mr))
        a("")
    a("### Targets (issue 3)")
    a("")
    a("| target | result | figures |")
    a("|---|---|---|")
    for t in res["targets"]:
        verdict = {True: "PASS", False: "**FAIL**", None: "not measured"}[t["pass"]]
        a(f"| {md_cell(t['target'])} | {verdict} | {md_cell(t['detail'])} |")
    a("")
    a("### CPU time (user + sys, medians)")
    a("")
    a("| tool | capture v1 CPU s | apply v1 CPU s | capture v2 CPU s | size on disk (allocated) MB |")
    a("|---|---:|---:|---:|---:|")
    for tool in TOOLS:
        m = med[tool]
        a(f"| {tool} | {fmt(m['capture_v1_cpu_s'], '.2f')} | {fmt(m['apply_v1_cpu_s'], '.2f')} | "
          f"{fmt(m['capture_v2_cpu_s'], '.2f')} | {fmt((m['size_v1_alloc_bytes'] or 0)/1e6, '.2f')} |")
    a("")
    a("### Spread over the runs (wall seconds, min - max)")
    a("")
    steps = ["capture_v1", "apply_v1", "capture_v2"]
    if mh:
        steps.append("capture_2g")
        a("| tool | capture v1 | apply v1 | capture v2 | capture 2 GB tree |")
        a("|---|---:|---:|---:|---:|")
    else:
        a("| tool | capture v1 | apply v1 | capture v2 |")
        a("|---|---:|---:|---:|")
    for tool in TOOLS:
        cells = []
        for step in steps:
            w = [r["wall_s"] for r in res["raw"]
                 if r["kind"] == "time" and r["tool"] == tool and r["step"] == step]
            cells.append(f"{min(w):.2f} - {max(w):.2f}" if w else "n/a")
        a(f"| {tool} | " + " | ".join(cells) + " |")
    a("")
    a("### What each tool restored (run 1, v1, compared with the source tree)")
    a("")
    a("| tool | result |")
    a("|---|---|")
    for tool in TOOLS:
        if tool in res["fidelity_run1"]:
            a(f"| {tool} | {md_cell(fidelity_summary(res['fidelity_run1'][tool]))} |")
    a("")
    a("## What the figures mean")
    a("")
    a("- **size MB**: bytes of the output after capturing v1, as the sum of the apparent sizes of its "
      "regular files (MB = 10^6 bytes; not `du -sb`, which would add 4 KiB per directory). "
      "slipway: the whole store directory (packs, index, records, refs). wimlib: the `.wim` file. "
      "tar+zstd: the `.tar.zst`. casync: the chunk store plus the `.caidx`.")
    a("- **capture s / apply s**: wall-clock seconds from `/usr/bin/time -f`. *capture MB/s* is v1's "
      f"regular-file bytes ({v1['file_bytes']/1e6:.1f} MB) divided by the capture time.")
    a("- **peak RSS**: GNU time's `%M`, the maximum resident set size in MiB. For the tar+zstd "
      "pipelines, which run as `bash -c 'tar ... | zstd ...'`, the figure is the largest of any single "
      "process in the pipeline (the kernel keeps the maximum over the waited-for descendants), not "
      "their sum.")
    a("- **v2 new MB**: what storing the second version costs on top of v1. slipway: growth of the "
      "store directory after `capture v2 --name` the same name (a second version). wimlib: size of "
      "the delta WIM from `wimlib-imagex capture V2 delta.wim --delta-from v1.wim`. casync: growth of "
      "the chunk store plus the new `.caidx`. tar+zstd has no dedup: the full v2 archive.")
    a("- **x columns**: peer / slipway for the same median; above 1 means slipway is smaller or faster.")
    if mh:
        a("- **2 GB tree table**: *output MB* is the store directory (slipway) or the `.tar.zst`; "
          "*capture MB/s* is the tree's regular-file bytes divided by the wall time; *peak RSS* is "
          "GNU time's `%M` as above (for tar+zstd the largest single process of the pipeline, "
          "usually zstd with its worker buffers).")
    a("")
    a("## Method")
    a("")
    a("- **Commands**, with `$O` on the scratch filesystem:")
    a("  - slipway: `slipway --store $O/slipway-store store init`; `slipway --store $O/slipway-store -q capture V1 "
      "--name bench`; `slipway --store $O/slipway-store -q apply bench@1 $O/apply`; `slipway --store $O/slipway-store "
      "-q capture V2 --name bench` (becomes `bench@2`).")
    a("  - wimlib: `wimlib-imagex capture V1 $O/v1.wim bench --unix-data` (default LZX, default "
      "threads); `wimlib-imagex apply $O/v1.wim 1 $O/apply --unix-data`; `wimlib-imagex capture V2 "
      "$O/delta.wim bench2 --unix-data --delta-from $O/v1.wim`.")
    a("  - tar+zstd: `tar --numeric-owner --xattrs --xattrs-include='*' --acls -C V1 -cf - . | zstd -3 "
      "-T0 -q -c > $O/v1.tar.zst`; `zstd -dc $O/v1.tar.zst | tar --numeric-owner --xattrs "
      "--xattrs-include='*' --acls -xpf - -C $O/apply` (into a freshly made empty directory).")
    a("  - casync: `casync make --store=$O/castr $O/v1.caidx V1/`; `casync extract --store=$O/castr "
      "$O/v1.caidx $O/apply/`; `casync make --store=$O/castr $O/v2.caidx V2/`.")
    if mh:
        a("  - memory step (every run, after the four tools; slipway first in odd runs, tar first in "
          "even runs): `slipway --store $O/mem-store store init`; `slipway --store $O/mem-store -q "
          "capture TREE2G --name big`; and `tar ... -C TREE2G -cf - . | zstd -3 -T0 -q -c > "
          "$O/tree-2g.tar.zst` with the same tar options as above. Each output is measured and deleted "
          "right after its step.")
    a("- **One scratch filesystem for every output of every tool**: a default (journaled) ext4 made "
      "with `mkfs.ext4 -q` in a 20 GiB sparse file under `target/bench-cache/`, loop-mounted at "
      "`target/bench-cache/mnt`, made fresh for each harness invocation and unmounted at the end. The "
      "source trees stay where they are. This host's `/` is ext4 without a journal, where creating "
      "files right after deleting many is pathologically slow (see research/baseline.md §0); the "
      "journaled scratch fs avoids that. Every apply/extract target does not exist before the step "
      "(tar's is created empty just before, since tar needs it); the previous one is deleted first.")
    a("- **Warm cache**: nothing is dropped from the page cache. Both source trees (and the 2 GB "
      "tree) are read once before the first run, so every tool reads them from RAM, and apply reads an output that was "
      "just written. `sync` runs before every timed step, so no step pays for an earlier step's "
      "write-back. Timings do not include a final `sync`: data a tool leaves dirty is not counted; "
      "slipway fsyncs its packs and records (crash safety) and pays for that inside its capture "
      "times; the peers do not fsync (checked with strace for wimlib).")
    a(f"- **Medians of {res['runs']} run{'s' if res['runs'] != 1 else ''}**, all tools on the same trees in one invocation. The order "
      "of the tools rotates from run to run. Every raw figure (wall, user, sys, RSS, the 1-minute "
      "load average at the start of each step) is in `bench/results/latest.json`.")
    a("- **Fidelity** (run 1 only, not timed): `bench/bench.py compare` walks the source and the "
      "applied tree and counts entries whose type, mode, owner, size, device number, symlink target, "
      "content (sha256), xattrs (ACLs and capabilities included), names per inode (hard links) or "
      "mtime differ. mtime differences under 1 µs (WIM keeps 100 ns) are counted separately.")
    a("")
    a("## Machine")
    a("")
    a(f"- {mach['os']}, kernel {mach['kernel']}, {mach['nproc']} CPUs ({mach['cpu']}), "
      f"{mach['mem_total_bytes']/2**30:.1f} GiB RAM")
    for l in res["load"]:
        a(f"- load average ({l['when']}): `{l['uptime']}`")
    a("  (the harness's own tools count in these figures: about 1 to 1.5 on an otherwise idle "
      "machine)")
    a("- versions:")
    for k, v in mach["versions"].items():
        a(f"  - {k}: `{v}`")
    a("")
    text = "\n".join(L)
    # Sections other harnesses keep in this page (bench/server.sh) survive.
    try:
        kept = extract_section(open(args.out).read(), SERVER_BEGIN, SERVER_END)
    except FileNotFoundError:
        kept = None
    if kept:
        text = splice_section(text, kept, SERVER_BEGIN, SERVER_END)
    with open(args.out, "w") as f:
        f.write(text)


SERVER_BEGIN = "<!-- server-bench:begin (written by bench/server.sh; bench/run.sh keeps it) -->"
SERVER_END = "<!-- server-bench:end -->"


def extract_section(text, begin, end):
    """The marked block (markers included), or None."""
    i = text.find(begin)
    j = text.find(end, i + 1) if i >= 0 else -1
    return text[i:j + len(end)] if i >= 0 and j >= 0 else None


def splice_section(text, block, begin, end):
    """`text` with its marked block replaced by `block` (appended if absent)."""
    old = extract_section(text, begin, end)
    if old:
        return text.replace(old, block)
    return text.rstrip("\n") + "\n\n" + block + "\n"


def cmd_server_markdown(args):
    with open(args.results) as f:
        res = json.load(f)
    meta, mach, load, dl, ratios = res["meta"], res["machine"], res["load"], res["download"], res["ratios"]
    name = os.path.relpath(args.results, os.path.dirname(os.path.dirname(os.path.abspath(args.out))))
    L = [SERVER_BEGIN]
    a = L.append
    a("")
    a(f"## Deployment server: {meta['machines']:,} machines, and an image to {meta['agents']} agents (issue 7)")
    a("")
    a(f"Results of `sudo bench/server.sh --runs {meta['runs_requested']}` at {res['generated_utc']}, "
      f"slipway at commit {meta['git_rev']}{' (uncommitted changes)' if meta['git_dirty'] else ''}; "
      f"medians of {res['runs']} runs; every figure and every raw record in `{name}`.")
    a("")
    a(f"**Load.** `slipway-load` simulates {meta['machines']:,} machines against one `slipway serve` "
      f"(self-signed TLS, HTTP/1.1, loopback): each enrolls with an enrollment token, reports its inventory, "
      f"reports it again with one fact changed (a new facts version), then posts {meta['events']} status events "
      f"(log and progress), one event per request, with {meta['concurrency']} requests in flight. Afterwards the "
      f"server's event count is compared with what was sent, and 50 machines' events and facts history are read "
      f"back. A fresh database each run; SQLite in the server's data directory, PostgreSQL "
      f"{mach['versions'].get('postgres', '').split(' (Debian')[0].replace('postgres (PostgreSQL) ', '')} in a "
      f"throwaway cluster (fsync on), both on the same journaled ext4 scratch filesystem.")
    a("")
    head = ["database", "events/s", "status post p50 ms", "p95 ms", "p99 ms", "max ms", "enroll p50 / p99 ms",
            "inventory p50 ms", "events stored / sent", "lost", "failed requests", "server CPU s", "server RSS MiB",
            "machine CPU busy %"]
    rows = []
    for db, m in load.items():
        if not m["runs"]:
            rows.append([db, "failed"] + [""] * (len(head) - 2))
            continue
        rows.append([db, fmt(m["events_per_second"], ".0f"), fmt(m["event_p50_ms"], ".1f"),
                     fmt(m["event_p95_ms"], ".1f"), fmt(m["event_p99_ms"], ".1f"), fmt(m["event_max_ms"], ".0f"),
                     f"{fmt(m['enroll_p50_ms'], '.0f')} / {fmt(m['enroll_p99_ms'], '.0f')}",
                     fmt(m["inventory_p50_ms"], ".0f"), f"{m['events_stored']:,} / {m['events_sent']:,}",
                     str(m["events_lost"]), str(m["failures"]), fmt(m["server_cpu_s"], ".1f"),
                     fmt(m.get("server_rss_mib"), ".0f"), fmt(m.get("cpu_busy_pct"), ".0f")])
    a(md_table(head, rows))
    a("")
    a(f"PostgreSQL / SQLite events per second: **{fmt(ratios['postgres_over_sqlite_events_per_second'], '.2f')}**. "
      "Latency is measured by the client around each request, from sending it to the parsed answer; with "
      f"{meta['concurrency']} requests in flight it is mostly time in the server's queue "
      "(requests in flight / events per second). An answer means the events are committed (synchronous=FULL on "
      "SQLite, fsync on PostgreSQL): an agent forgets an event only once it is durable. SQLite writes status "
      "events by group commit (the batches that arrive during one commit share the next; "
      "docs/server-api.md §16). PostgreSQL runs on the same two CPUs as the server and the load tool "
      "(machine CPU busy %), so its figure here is bounded by this machine, not by PostgreSQL.")
    a("")
    a(f"**Download.** The image ({meta['store']['image']}: {meta['store']['packs']} packs, "
      f"{meta['store']['pack_bytes'] / 1e6:.1f} MB) to {meta['agents']} clients at once over TLS on loopback, "
      "one server, rotating order each run:")
    a("")
    a("- `slipway_agent`: the agent's own fetch (`fetch_image`): record, manifest, every pack, 8 requests in flight, "
      "each blob decompressed, checked against its BLAKE3 id and imported into the agent's own new cache store "
      "(compressed again and written as packs): everything an agent does before applying.")
    a("- `slipway_packs`: the same pack URLs (`/v1/content/packs/ID`) from slipway, 8 at a time per client, into files.")
    a("- `nginx_packs`: the same files from nginx (sendfile, TLS with the same certificate, the store as its root), "
      "same client.")
    a("")
    head = ["download", "wall s (min - max)", "MB/s", "per client median / max s", "MB moved", "client CPU s",
            "failed"]
    rows = []
    for m, d in dl.items():
        if not d["runs"]:
            rows.append([m, "failed"] + [""] * (len(head) - 2))
            continue
        rows.append([m, f"{d['seconds']:.2f} ({d['seconds_min']:.2f} - {d['seconds_max']:.2f})",
                     fmt(d["mb_per_s"], ".0f"), f"{d['agent_median_s']:.2f} / {d['agent_max_s']:.2f}",
                     fmt(d["bytes"] / 1e6, ".1f"), fmt(d["client_cpu_s"], ".1f"), str(d["failures"])])
    a(md_table(head, rows))
    a("")
    a(f"Time ratios: slipway serving packs / nginx **{fmt(ratios['slipway_packs_over_nginx_seconds'], '.2f')}**; "
      f"the full agent fetch / nginx serving files {fmt(ratios['slipway_agent_over_nginx_seconds'], '.2f')} "
      "(the agent's time goes to its own CPU work, decompressing, hashing and storing, on the same 2 CPUs as "
      "the server; it is not the server's speed).")
    a("")
    if res["findings"]:
        a("**Findings:**")
        for f_ in res["findings"]:
            a(f"- {f_}")
    else:
        a("No findings: every request answered, no event lost, the server stayed up through every run.")
    a("")
    a("**How to rerun:** `sudo bench/server.sh` (`--runs N`, `--machines N`, `--events N`, `--concurrency N`, "
      "`--agents K`; `--quick` for one run that leaves this page alone). It installs what is missing "
      "(`scripts/install-deps.sh`), builds `slipway` and the load tool `slipway-load` (`crates/agent/src/bin`, "
      "`slipway-load --help`) in release mode, and keeps every server, database and cache on a fresh journaled "
      "ext4 filesystem in a loop-mounted file. The commands of each step:")
    a("")
    for step, cmd in meta.get("commands", {}).items():
        a(f"- {step}: {cmd}" if cmd.startswith("the ") else f"- {step}: `{cmd}`")
    a("")
    a(f"Machine: {mach['os']}, kernel {mach['kernel']}, {mach['nproc']} CPUs ({mach['cpu']}), "
      f"{mach['mem_total_bytes'] / 2**30:.1f} GiB RAM; the load tool, the server, the database and nginx share "
      "the two CPUs. Versions: " + ", ".join(f"{k} `{v}`" for k, v in mach["versions"].items()) + ".")
    a("")
    a(SERVER_END)
    block = "\n".join(L)
    try:
        text = open(args.out).read()
    except FileNotFoundError:
        text = ""
    with open(args.out, "w") as f:
        f.write(splice_section(text, block, SERVER_BEGIN, SERVER_END))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("size")
    p.add_argument("paths", nargs="+")
    p.set_defaults(fn=cmd_size)
    p = sub.add_parser("compare")
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(fn=cmd_compare)
    p = sub.add_parser("report")
    p.add_argument("--raw", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--json-copy", action="append")
    p.set_defaults(fn=cmd_report)
    p = sub.add_parser("markdown")
    p.add_argument("results")
    p.add_argument("out")
    p.set_defaults(fn=cmd_markdown)
    p = sub.add_parser("server-markdown")
    p.add_argument("results")
    p.add_argument("out")
    p.set_defaults(fn=cmd_server_markdown)
    p = sub.add_parser("changed")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--list", required=True)
    p.add_argument("--deleted", required=True)
    p.set_defaults(fn=cmd_changed)
    p = sub.add_parser("sysprep-check")
    p.add_argument("root")
    p.add_argument("--before")
    p.add_argument("--step", required=True)
    p.add_argument("--run", type=int, required=True)
    p.add_argument("--fsck")
    p.add_argument("--expect", action="store_true")
    p.set_defaults(fn=cmd_sysprep_check)
    p = sub.add_parser("specialize-check")
    p.add_argument("root")
    p.add_argument("--step", required=True)
    p.add_argument("--run", type=int, required=True)
    p.add_argument("--hostname", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--hash", required=True)
    p.add_argument("--pubkey", required=True)
    p.add_argument("--timezone", required=True)
    p.add_argument("--binary", required=True)
    p.set_defaults(fn=cmd_specialize_check)
    # The harness reports: raw JSON lines and run metadata in, the result out.
    for name, fn in [
        ("iso-report", cmd_iso_report),
        ("servicing-report", cmd_servicing_report),
        ("sysprep-report", cmd_sysprep_report),
    ]:
        p = sub.add_parser(name)
        p.add_argument("--raw", required=True)
        p.add_argument("--meta", required=True)
        p.add_argument("--out", required=True)
        p.set_defaults(fn=fn)
    p = sub.add_parser("randfile")
    p.add_argument("seed", type=int)
    p.add_argument("size", type=int)
    p.add_argument("path")
    p.set_defaults(fn=cmd_randfile)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
