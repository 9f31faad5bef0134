#!/usr/bin/env python3
"""Checks every `import` in Sources/ against the target graph (../shared/design.md: a target may import only what is
below it; the core imports no I/O library; each C library is reached through the one target that wraps it). A new
dependency is a decision: add it here, with the design, or the lint fails. Called by scripts/lint.sh."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The standard library's modules every target may import.
STANDARD = {"Synchronization", "Dispatch", "Glibc"}

# Target folder -> the modules its files may import (besides STANDARD).
ALLOWED = {
    "DTMCore": {"Logging"},  # plain Swift: no NIO, no Foundation, no C, no driver
    "JSONSupport": {"DTMCore", "FoundationEssentials"},
    "EventLoopSupport": {"Logging", "NIOCore"},
    "ProtoCSupport": {"CProtobufC"},
    "HTTP2": {"CNghttp2", "EventLoopSupport", "Logging", "NIOCore", "NIOPosix", "NIOSSL"},
    "Etcd": {"HTTP2", "DTMProtoC", "CProtobufC", "ProtoCSupport", "Logging", "NIOCore", "NIOPosix", "NIOSSL"},
    "DTMMetrics": {"DTMCore", "Prometheus"},
    "DTMTracing": {"DTMCore", "Tracing", "OTel", "W3CTraceContext", "ServiceLifecycle", "Logging"},
    "SQLiteStore": {"DTMCore", "CSQLite", "JSONSupport", "Logging"},
    "PostgresStore": {"DTMCore", "JSONSupport", "EventLoopSupport", "PostgresNIO", "NIOCore", "NIOPosix", "NIOSSL", "Logging"},
    "MySQLStore": {"DTMCore", "CMariaDB", "JSONSupport", "Logging", "NIOCore"},
    "DTMHTTP": {
        "DTMCore", "DTMMetrics", "EventLoopSupport", "JSONSupport", "NIOCore", "NIOPosix", "NIOHTTP1", "NIOSSL",
        "AsyncHTTPClient", "Logging", "FoundationEssentials",
    },
    "DTMGRPC": {
        "DTMCore", "DTMProtoC", "CProtobufC", "ProtoCSupport", "DTMMetrics", "HTTP2", "JSONSupport", "EventLoopSupport",
        "Logging", "NIOCore", "NIOSSL", "FoundationEssentials",
    },
    "DTMServer": {
        "DTMCore", "SQLiteStore", "PostgresStore", "MySQLStore", "DTMHTTP", "DTMGRPC", "DTMMetrics", "DTMTracing", "HTTP2", "Etcd",
        "EventLoopSupport", "CCrashGuard", "AsyncHTTPClient", "NIOSSL", "NIOCore", "NIOPosix", "Logging", "ServiceLifecycle",
        "Yams",
    },
    "DTMTestSupport": {"DTMCore", "Foundation"},
    "Fuzz": {"DTMCore", "DTMTestSupport", "DTMGRPC", "DTMHTTP", "HTTP2", "FuzzSupport", "Logging", "Foundation"},
    "dtm-server": {"DTMServer", "ArgumentParser", "CMimalloc"},
    "dtm-bench": {
        "DTMCore", "DTMGRPC", "HTTP2", "EventLoopSupport", "CMimalloc", "Etcd", "ArgumentParser", "NIOCore", "NIOPosix",
        "NIOHTTP1", "Histogram", "Logging",
    },
}

# C modules, and the only targets that may import each (the wrapper, or the targets holding generated messages).
C_MODULES = {
    "CNghttp2": {"HTTP2"},
    "CSQLite": {"SQLiteStore"},
    "CMariaDB": {"MySQLStore"},
    "CProtobufC": {"ProtoCSupport", "DTMGRPC", "Etcd"},
    "DTMProtoC": {"DTMGRPC", "Etcd"},
    "CMimalloc": {"dtm-server", "dtm-bench"},
    "CCrashGuard": {"DTMServer"},
}

IMPORT = re.compile(r"^\s*(?:@\w+\s+)*(?:(?:public|package|internal|fileprivate|private)\s+)?import\s+(?:\w+\s+)?([A-Za-z_][\w.]*)")


def main():
    problems = []
    sources = os.path.join(ROOT, "Sources")
    for target in sorted(os.listdir(sources)):
        folder = os.path.join(sources, target)
        swift = [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs if f.endswith(".swift")]
        if not swift:
            continue
        if target not in ALLOWED:
            problems.append("Sources/%s: a target this check does not know; add it to scripts/check-imports.py" % target)
            continue
        for path in sorted(swift):
            for number, line in enumerate(open(path, encoding="utf-8"), 1):
                m = IMPORT.match(line)
                if not m:
                    continue
                module = m.group(1).split(".")[0]
                where = "%s:%d" % (os.path.relpath(path, ROOT), number)
                if module in C_MODULES and target not in C_MODULES[module]:
                    problems.append("%s: imports the C module %s, which only %s may" % (where, module, ", ".join(sorted(C_MODULES[module]))))
                elif module not in ALLOWED[target] | STANDARD:
                    problems.append("%s: %s may not import %s (scripts/check-imports.py, ../shared/design.md)" % (where, target, module))
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
