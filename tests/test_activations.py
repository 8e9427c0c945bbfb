import torch

from fac_lightning.activations import ActivationStream, ShuffleBuffer, TokenizedCorpus, collate, split_heldout
from fac_lightning.backbone import load_backbone
from fac_lightning.config import ActivationsConfig, SourceConfig
from fac_lightning.data.conversations import load_conversations
from tests.conftest import CACHE_DIR, DATA_DIR, compose_config, tiny_backbone_overrides


def test_keep_mask_drops_padding_special_tokens_and_prefix():
    special = torch.tensor([1, 2])
    batch = collate([[1, 5, 6, 7, 2], [1, 5, 9]], pad_id=2, special_ids=special, prefix_len=2)
    assert batch.keep_BT.tolist() == [[False, False, True, True, False], [False, False, True, False, False]]
    assert batch.attention_mask_BT.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]


def test_shuffle_buffer_emits_every_row_once():
    buffer = ShuffleBuffer(capacity=100, seed=0)
    seen = []
    for start in range(0, 1000, 30):
        buffer.add(torch.arange(start, start + 30).float()[:, None])
        if buffer.ready():
            seen += [x for batch in buffer.take(16) for x in batch[:, 0].tolist()]
    left = torch.cat(buffer.chunks)[:, 0].tolist()
    assert sorted(seen + left) == list(range(1020))[:1020] and len(set(seen)) == len(seen)
    assert seen[:16] != sorted(seen[:16])  # shuffled


def test_heldout_split_is_deterministic_and_disjoint():
    convs = [[{"role": "user", "content": f"q{i}"}] for i in range(50)]
    train, held = split_heldout(convs, 5)
    assert len(held) == 5 and len(train) == 45 and split_heldout(convs, 5)[1] == held
    assert not {repr(c) for c in held} & {repr(c) for c in train}


def test_stream_yields_kept_token_batches_and_resumes(tiny_llama_dir):
    backbone = load_backbone(compose_config(tiny_backbone_overrides(tiny_llama_dir)).backbone, CACHE_DIR)
    convs = load_conversations(SourceConfig(name="a", format="instruction_output", max_rows=24,
                                            local_path="alpaca_eval/phi-2.model_outputs.json.gz"), DATA_DIR)
    cfg = ActivationsConfig(text_batch_size=4, max_length=64, sort_window=8)
    corpus = TokenizedCorpus(backbone, convs, cfg)
    stream = ActivationStream(backbone, corpus, batch_tokens=32, buffer_tokens=128, seed=0)
    batches = [b for _, b in zip(range(10), stream)]
    assert all(b.shape == (32, 64) and b.dtype == torch.float32 and not b.is_inference() for b in batches)
    kept = sum(int(b.keep_BT.sum()) for b in corpus.batches(0))
    assert kept < sum(len(s) for s in corpus.sequences) - len(corpus) * backbone.prefix_len + 1
    resumed = ActivationStream(backbone, corpus, 32, 128, seed=0, start_sequence=stream.sequences_done)
    first = next(iter(resumed.token_batches()))
    expected = [b for b in corpus.batches(0, epoch=stream.sequences_done // len(corpus))]
    assert any(torch.equal(first.input_ids_BT, b.input_ids_BT) for b in expected)


def test_ddp_ranks_stream_disjoint_shards_that_cover_the_corpus(tiny_llama_dir):
    backbone = load_backbone(compose_config(tiny_backbone_overrides(tiny_llama_dir)).backbone, CACHE_DIR)
    convs = load_conversations(SourceConfig(name="a", format="instruction_output", max_rows=24,
                                            local_path="alpaca_eval/phi-2.model_outputs.json.gz"), DATA_DIR)
    corpus = TokenizedCorpus(backbone, convs, ActivationsConfig(text_batch_size=4, max_length=64, sort_window=8))
    epoch = list(corpus.batches(0))

    def first_epoch(rank: int, world: int) -> list:
        stream = ActivationStream(backbone, corpus, 32, 128, seed=0, rank=rank, world_size=world)
        return [b.input_ids_BT for b, _ in zip(stream.token_batches(), range(len(epoch) // world))]

    shards = [first_epoch(rank, 2) for rank in (0, 1)]
    assert all(torch.equal(a, b.input_ids_BT) for a, b in zip(shards[0] + shards[1], epoch[0::2] + epoch[1::2]))
    assert len(shards[0]) + len(shards[1]) == len(epoch)
