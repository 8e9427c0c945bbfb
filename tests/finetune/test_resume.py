"""The finetunes' batch order under DDP: each process an equal, disjoint share of the epoch's permutation, resumable
at its position."""

from fac_lightning.finetune import resume
from fac_lightning.finetune.resume import EpochShuffle


def test_under_ddp_each_rank_takes_an_equal_disjoint_share_and_resumes_at_its_position(monkeypatch):
    sampler = EpochShuffle(10, seed=3)
    whole = list(iter(sampler))  # outside a DDP fit: the epoch's whole permutation
    assert sorted(whole) == list(range(10)) and len(sampler) == 10
    shares = []
    for rank in (0, 1, 2):
        monkeypatch.setattr(resume, "process_group", lambda rank=rank: (rank, 3))
        shares.append(list(iter(sampler)))
    assert len(sampler) == 4 and [len(share) for share in shares] == [4, 4, 4]  # 10 padded to 12 by its first two
    assert sorted(i for share in shares for i in share) == sorted(whole + whole[:2]) and shares[0][:2] == whole[0:6:3]
    iterator = iter(sampler)  # rank 2, killed after two batches of one row
    next(iterator), next(iterator)
    resumed = iter(sampler)
    resumed.load_state_dict(iterator.state_dict())
    assert list(resumed) == shares[2][2:]
    sampler.set_epoch(1)
    assert list(iter(sampler)) != shares[2]  # the next epoch draws its own permutation
