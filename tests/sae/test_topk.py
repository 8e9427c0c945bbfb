import torch

from fac_lightning.sae.module import SAEModule, geometric_median
from fac_lightning.sae.topk import TopKConfig, TopKSAE, load_sae, per_latent_sums


def test_topk_keeps_exactly_k():
    torch.manual_seed(0)
    sae = TopKSAE(d_in=32, num_latents=256, k=7)
    acts_BK, idx_BK = sae.encode(torch.randn(50, 32))
    assert acts_BK.shape == idx_BK.shape == (50, 7)
    assert all(len(set(row.tolist())) == 7 for row in idx_BK)
    dense = sae.pre_acts(torch.randn(50, 32))
    assert ((dense > 0).sum(-1) > 7).all()  # so the TopK, not ReLU, is what limits it to 7


def assert_gradients_match_dense_reference(sae: TopKSAE, ref: TopKSAE, x_BD: torch.Tensor) -> None:
    """``sae``'s gradients (after its FVU's backward) equal those of ``ref``, the same weights run densely: TopK of
    the (B, F) pre-activations scattered into a (B, F) code, decoded by a dense matmul."""
    vals_BK, idx_BK = ref.pre_acts(x_BD).topk(ref.k)
    x_hat_BD = torch.zeros(len(x_BD), ref.num_latents).scatter(1, idx_BK, vals_BK) @ ref.W_dec + ref.b_dec
    ((x_hat_BD - x_BD).pow(2).sum() / (x_BD - x_BD.mean(0)).pow(2).sum()).backward()
    for (name, p), q in zip(sae.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_sparse_backward_matches_dense_reference():
    torch.manual_seed(0)
    sae, ref = TopKSAE(16, 128, 5), TopKSAE(16, 128, 5)
    ref.load_state_dict(sae.state_dict())
    x_BD = torch.randn(64, 16)
    sae(x_BD).fvu.backward()
    assert_gradients_match_dense_reference(sae, ref, x_BD)


def test_backward_matches_dense_reference_when_fewer_than_k_latents_are_positive():
    """Selected latents whose ReLU output is 0 get no gradient (ReLU's derivative), as in the dense reference."""
    torch.manual_seed(0)
    sae, ref = TopKSAE(16, 32, 8), TopKSAE(16, 32, 8)
    with torch.no_grad():
        sae.b_enc[3:] = -50.0  # at most 3 latents can be positive, so each token keeps >= 5 zeros among its 8
    ref.load_state_dict(sae.state_dict())
    x_BD = torch.randn(64, 16)
    out = sae(x_BD)
    assert ((out.acts_BK > 0).sum(-1) <= 3).all()
    out.fvu.backward()
    assert_gradients_match_dense_reference(sae, ref, x_BD)


def test_a_bf16_autocast_step_gives_float32_gradients_close_to_the_float32_step():
    """trainer.precision=bf16-mixed runs the encoder's matmul and TopK in bf16 (as sparsify on a GPU); the decoder,
    the losses and every gradient stay float32."""
    torch.manual_seed(0)
    sae, ref = TopKSAE(16, 64, 4), TopKSAE(16, 64, 4)
    ref.load_state_dict(sae.state_dict())
    x_BD, dead_F = torch.randn(256, 16), torch.ones(64, dtype=torch.bool)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sae(x_BD, dead_F)
    assert out.acts_BK.dtype == torch.bfloat16 and out.x_hat_BD.dtype == out.fvu.dtype == torch.float32
    (out.fvu + out.auxk).backward()
    expected = ref(x_BD, dead_F)
    (expected.fvu + expected.auxk).backward()
    assert abs(out.fvu.item() - expected.fvu.item()) < 0.02
    for (name, p), q in zip(sae.named_parameters(), ref.parameters()):
        assert p.grad.dtype == torch.float32, name
        assert torch.nn.functional.cosine_similarity(p.grad.flatten(), q.grad.flatten(), dim=0) > 0.95, name


def test_per_latent_sums_matches_a_loop():
    torch.manual_seed(0)
    idx_BK, weights_BK, rows_BD = torch.randint(0, 10, (7, 3)), torch.randn(7, 3), torch.randn(7, 5)
    expected = torch.zeros(12, 5)  # latents 10, 11 are never selected: zero rows
    for b in range(7):
        for k in range(3):
            expected[idx_BK[b, k]] += weights_BK[b, k] * rows_BD[b]
    torch.testing.assert_close(per_latent_sums(idx_BK, weights_BK, rows_BD, 12), expected)


def test_tokens_since_fired_resets_exactly_the_latents_that_fired():
    torch.manual_seed(0)
    module = module_for(24)
    with torch.no_grad():
        module.sae.b_enc[:64] = -50.0  # latents 0..63 never fire; some tokens keep zeros among their top 4
    module.tokens_since_fired_F.fill_(1000)
    x_BD = synthetic_activations(n=32)
    module.training_step(x_BD, 0)
    acts_BK, idx_BK = module.sae.encode(x_BD)
    fired_F = torch.zeros(128, dtype=torch.bool)
    fired_F[idx_BK[acts_BK > 0]] = True
    assert fired_F.any() and not fired_F.all()
    expected_F = torch.where(fired_F, 0, 1000 + 32)
    assert torch.equal(module.tokens_since_fired_F, expected_F)


def test_train_metrics_are_logged_only_on_the_steps_the_logger_writes():
    module = module_for(24)
    logged_steps = []
    module.log_dict = lambda metrics, **kwargs: logged_steps.append(module.global_step)
    module._trainer = type("TrainerStub", (), {"log_every_n_steps": 5, "global_step": 0, "world_size": 1})()
    x_BD = synthetic_activations(n=32)
    for step in range(12):
        module._trainer.global_step = step
        module.training_step(x_BD, step)
    assert logged_steps == [4, 9]


def train_steps(module: SAEModule, x_ND: torch.Tensor, steps: int, batch: int = 256) -> list[float]:
    opt = module.configure_optimizers()["optimizer"]
    fvus = []
    for step in range(steps):
        x_BD = x_ND[torch.randint(len(x_ND), (batch,))]
        loss = module.training_step(x_BD, step)
        opt.zero_grad()
        loss.backward()
        module.on_before_optimizer_step(opt)
        opt.step()
        module.on_train_batch_end(None, x_BD, step)
        fvus.append(module.sae(x_BD).fvu.item())
    return fvus


def synthetic_activations(n: int = 4096, d: int = 24, atoms: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(atoms, d, generator=g)
    codes = torch.rand(n, atoms, generator=g) * (torch.rand(n, atoms, generator=g) < 0.06)
    return codes @ dictionary + 3.0  # offset: b_dec init has something to find


def module_for(d: int, **overrides) -> SAEModule:
    module = SAEModule(TopKConfig(**{"k": 4, "num_latents": 128, "lr": 3e-3, **overrides}), d_in=d)
    module.log_dict = lambda *a, **k: None  # outside a Trainer
    return module


def test_decoder_rows_stay_unit_norm_and_fvu_falls():
    torch.manual_seed(0)
    x_ND = synthetic_activations()
    module = module_for(24)
    fvus = train_steps(module, x_ND, 150)
    norms = module.sae.W_dec.norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    assert fvus[-1] < 0.5 * fvus[0]
    torch.testing.assert_close(module.sae.b_dec.detach(), geometric_median(x_ND[:256]), atol=0.5, rtol=0.0)


def test_auxk_pushes_a_planted_dead_latent_back_towards_firing():
    """AuxK gives the dead latent gradient (through its encoder row); without AuxK it gets none and stays dead."""
    torch.manual_seed(0)
    x_ND = synthetic_activations()

    def planted() -> SAEModule:
        module = module_for(24, dead_tokens=256, auxk_coef=1 / 32)
        module.init_b_dec(x_ND[:256])
        with torch.no_grad():  # latent 0 never wins the TopK: its pre-activations are tiny (but positive)
            module.sae.W_enc[0] *= 1e-3
            module.sae.b_enc[0] = 1e-3
        return module

    def top_pre_act(m: SAEModule) -> float:
        return m.sae.pre_acts(x_ND)[:, 0].max().item()

    fires = lambda m: (m.sae.encode(x_ND)[1] == 0).any().item()
    with_auxk, without = planted(), planted()
    without.cfg.auxk_coef = 0.0
    before = top_pre_act(with_auxk)
    assert not fires(with_auxk)
    train_steps(with_auxk, x_ND, 300)
    train_steps(without, x_ND, 300)
    assert top_pre_act(with_auxk) > 100 * before and top_pre_act(without) < 2 * before
    assert not fires(without)


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    sae = TopKSAE(20, 80, 6)
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.b_enc.normal_()
    sae.save(tmp_path / "sae", extra={"backbone": "x", "layer": 3})
    loaded, cfg = load_sae(tmp_path / "sae")
    x = torch.randn(10, 20)
    assert cfg["layer"] == 3 and cfg["k"] == 6
    assert torch.equal(sae(x).x_hat_BD, loaded(x).x_hat_BD)
