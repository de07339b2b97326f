"""The bench's CPU accounting: what a process that ends during a measured window leaves behind."""

from __future__ import annotations

from bench.measure import POSTGRES_BACKGROUND, CpuSample, cpu_by_kind


def sample(**processes: tuple[float, str]) -> CpuSample:
    by_pid = {int(name[1:]): value for name, value in processes.items()}
    return CpuSample(at=0.0, machine_busy=0.0, machine_total=1.0, processes=by_pid)


def test_a_backend_that_ends_counts_up_to_its_last_sample_and_leaves_the_postmaster_s_share_alone() -> None:
    # p1 the postmaster (its reaped children's CPU included), p10 a backend that lives on, p11 one
    # whose connection closed in the window: 2.0 s before, 2.4 s at its last sample; its 2.5 s in the end
    # went to the postmaster's count.
    before = sample(p1=(1.0, POSTGRES_BACKGROUND), p10=(3.0, "postgres"), p11=(2.0, "postgres"))
    after = sample(p1=(3.5, POSTGRES_BACKGROUND), p10=(3.5, "postgres"))
    seen = {10: (3.4, "postgres"), 11: (2.4, "postgres"), 12: (0.3, "postgres")}  # p12: came and went

    seconds = cpu_by_kind(before, after, seen=seen)

    assert round(seconds["postgres"], 6) == round(0.5 + 0.4 + 0.3, 6)
    # The postmaster gained 2.5 (p11's lifetime) + 0.3 (p12's) of which 2.4 + 0.3 are taken back.
    assert round(seconds[POSTGRES_BACKGROUND], 6) == round(2.5 - 2.4 - 0.3, 6)


def test_a_process_of_the_stack_that_ends_comes_back_in_its_parent() -> None:
    # A worker child (p21) reaped by its parent (p20): the parent's cutime holds all of it.
    before = sample(p20=(1.0, "worker"), p21=(4.0, "worker"))
    after = sample(p20=(1.0 + 4.5, "worker"))

    assert round(cpu_by_kind(before, after)["worker"], 6) == 0.5
