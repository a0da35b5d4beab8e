"""The core-readiness checks are pure functions of gathered facts: each is
judged here on facts made up for the case, no host read."""

from __future__ import annotations

import dataclasses

from crashkit.analysis.readiness import (
    check_core_pattern,
    check_disk_space,
    check_hard_limit,
    check_limit_core_unit,
    core_checks,
)
from crashkit.model.readiness import CoreFacts, CoreSetting, core_target

SETTING = CoreSetting("www-data", 33, 33, "/var/lib/crashkit/cores", 2 << 30, 2, 4242)
COREDUMP = "|/lib/systemd/systemd-coredump %P %u %g %s %t %c %h"


def facts(**kw: object) -> CoreFacts:
    base = CoreFacts(core_pattern="core", core_uses_pid="1", suid_dumpable="0",
                     systemd_running=True, unit="nginx.service", unit_limit_core="infinity",
                     master_core_limits=(0, None), master_cap_sys_resource=True,
                     pattern_dir_writable=None, core_target=SETTING.core_dir,
                     core_target_probe="/var/lib", free_bytes=100 << 30, worker_sizes=())
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_a_dead_pipe_handler_is_a_failure() -> None:
    gone = check_core_pattern("|/usr/lib/nothing-here %p", SETTING, None,
                              facts(pipe_program_runnable=False))
    assert gone.status == "fail" and "drops every core" in gone.detail
    assert gone.fix is not None and gone.fix.startswith("sysctl -w kernel.core_pattern=core")
    # systemd-coredump without its socket: the kernel runs it, it cannot hand the core on.
    no_systemd = check_core_pattern(COREDUMP, SETTING, None, facts(
        pipe_program_runnable=True, coredump_socket=False, systemd_running=False))
    assert no_systemd.status == "fail" and "systemd is not running here" in no_systemd.detail
    assert no_systemd.fix == "sysctl -w kernel.core_pattern=core"
    stopped = check_core_pattern(COREDUMP, SETTING, None, facts(
        pipe_program_runnable=True, coredump_socket=False, systemd_running=True))
    assert stopped.status == "fail" and stopped.fix == "systemctl start systemd-coredump.socket"
    alive = check_core_pattern(COREDUMP, SETTING, None, facts(
        pipe_program_runnable=True, coredump_socket=True))
    assert alive.status == "ok" and "/var/lib/systemd/coredump" in alive.detail
    assert "collect" not in alive.detail  # advice names only what exists


def test_other_checks_from_facts() -> None:
    assert check_limit_core_unit(facts(systemd_running=False)).status == "skip"
    low = check_limit_core_unit(facts(unit_limit_core="0"))
    assert low.status == "warn" and low.remedy is not None and low.remedy.value == "infinity"
    assert check_hard_limit(SETTING, facts()).status == "ok"
    capped = facts(master_core_limits=(0, 1 << 20), master_cap_sys_resource=False)
    assert check_hard_limit(SETTING, capped).status == "fail"
    assert check_hard_limit(SETTING, dataclasses.replace(
        capped, master_cap_sys_resource=True)).status == "ok"
    full = check_disk_space("core", SETTING, facts(free_bytes=1 << 30, worker_sizes=(3 << 30,)))
    assert full.status == "warn" and "2 workers crashing together need about" in full.detail
    assert check_disk_space("core", SETTING, facts(free_bytes=None)).status == "skip"
    names = [c.name for c in core_checks(SETTING, facts())]
    assert names[0] == "kernel.core_pattern" and names[-1] == "free disk space"


def test_where_cores_land() -> None:
    assert core_target(COREDUMP, "/wd") == "/var/lib/systemd/coredump"
    assert core_target("|/usr/share/apport/apport %p", "/wd") == "/var/crash"
    assert core_target("/cores/core.%e.%p", "/wd") == "/cores"
    assert core_target("core", "/wd") == "/wd"
