import keras
import numpy as np
import pytest
import tensorflow as tf

from mr2ct.models import CycleGAN, ImagePool, PatchDiscriminator, ResnetGenerator

SIZE = 32


def make_cyclegan(lambda_gc=0.3, lambda_identity=0.0, pool_size=4, optimizer=None, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = CycleGAN(
        ResnetGenerator(filters=4, num_blocks=1, name="g_ct"),
        ResnetGenerator(filters=4, num_blocks=1, name="g_mr"),
        PatchDiscriminator(filters=4, name="d_ct"),
        PatchDiscriminator(filters=4, name="d_mr"),
        image_shape=(SIZE, SIZE, 1),
        lambda_gc=lambda_gc,
        lambda_identity=lambda_identity,
        pool_size=pool_size,
        **kwargs,
    )
    make = optimizer or (lambda: keras.optimizers.Adam(2e-4, beta_1=0.5))
    model.compile(generator_optimizer=make(), discriminator_optimizer=make())
    return model


def batch(n=2, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "mr": rng.uniform(-1, 1, (n, SIZE, SIZE, 1)).astype("float32"),
        "ct": rng.uniform(-1, 1, (n, SIZE, SIZE, 1)).astype("float32"),
    }


def body_batch(n=2, seed=0):
    """Noisy discs in air (-1): images with a body, whose untrained translation has a different one."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disc = ((yy - SIZE / 2) ** 2 + (xx - SIZE / 2) ** 2 < (SIZE / 3) ** 2)[None, :, :, None]
    return {k: np.where(disc, rng.uniform(-0.5, 1, (n, SIZE, SIZE, 1)), -1.0).astype("float32") for k in ("mr", "ct")}


def test_train_step_gives_finite_losses_and_changes_all_weights():
    model = make_cyclegan()
    before = [v.numpy().copy() for v in model.trainable_variables]
    logs = model.train_step(batch())
    assert all(np.isfinite(float(v)) for v in logs.values())
    after = [v.numpy() for v in model.trainable_variables]
    assert all(not np.allclose(b, a) for b, a in zip(before, after))


@pytest.mark.parametrize(
    "lambda_gc, lambda_identity, lambda_outline, expected_extra",
    [(0.3, 0.0, 0.0, {"gc"}), (0.0, 0.0, 0.0, set()), (0.0, 0.5, 0.0, {"identity"}),
     (1.0, 0.5, 0.0, {"gc", "identity"}), (0.3, 0.0, 1.0, {"gc", "outline"})],
)
def test_loss_terms_reported(lambda_gc, lambda_identity, lambda_outline, expected_extra):
    model = make_cyclegan(lambda_gc=lambda_gc, lambda_identity=lambda_identity, lambda_outline=lambda_outline)
    logs = model.train_step(batch())
    base = {"generator_loss", "adv_ct", "adv_mr", "cycle", "discriminator_loss", "d_ct", "d_mr"}
    assert set(logs) == base | expected_extra


def test_generator_loss_is_the_weighted_sum_of_its_terms():
    model = make_cyclegan(lambda_gc=0.3, lambda_identity=0.5, lambda_outline=2.0)
    # Zero learning rates: the logged terms all come from the same weights.
    model.compile(keras.optimizers.SGD(0.0), keras.optimizers.SGD(0.0))
    logs = {k: float(v) for k, v in model.train_step(body_batch()).items()}
    assert logs["outline"] > 0
    expected = (logs["adv_ct"] + logs["adv_mr"] + 3.0 * logs["cycle"] + 0.3 * logs["gc"] + 0.5 * logs["identity"]
                + 2.0 * logs["outline"])
    assert logs["generator_loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["discriminator_loss"] == pytest.approx(logs["d_ct"] + logs["d_mr"], rel=1e-5)


def test_gc_loss_changes_the_generator_update():
    with_gc = make_cyclegan(lambda_gc=5.0, seed=3)
    without = make_cyclegan(lambda_gc=0.0, seed=3)
    for a, b in zip(with_gc.trainable_variables, without.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    data = batch()
    with_gc.train_step(data)
    without.train_step(data)
    g_with = with_gc.generator_mr_to_ct.trainable_variables[0].numpy()
    g_without = without.generator_mr_to_ct.trainable_variables[0].numpy()
    assert not np.allclose(g_with, g_without)


def test_call_translates_mr_to_ct_and_config_round_trips(tmp_path):
    model = make_cyclegan()
    x = batch()["mr"]
    np.testing.assert_array_equal(model(x).numpy(), model.generator_mr_to_ct(x).numpy())
    clone = CycleGAN.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.lambda_gc == 0.3 and clone.pool_size == 4
    assert (clone.gc_absolute, clone.gc_operator) == (True, "central")
    signed = CycleGAN.from_config({**model.get_config(), "gc_absolute": False, "gc_operator": "sobel"})
    assert (signed.gc_absolute, signed.gc_operator) == (False, "sobel")
    assert signed.get_config()["gc_absolute"] is False
    outlined = CycleGAN.from_config({**model.get_config(), "lambda_outline": 1.5, "outline_threshold": -0.7,
                                     "outline_softness": 0.05})
    assert (outlined.lambda_outline, outlined.outline_threshold, outlined.outline_softness) == (1.5, -0.7, 0.05)
    assert CycleGAN.from_config(outlined.get_config()).get_config() == outlined.get_config()


def test_model_fit_runs_the_custom_step():
    model = make_cyclegan()
    ds = tf.data.Dataset.from_tensor_slices(batch(4)).batch(2, drop_remainder=True)
    history = model.fit(ds, epochs=2, verbose=0)
    assert "gc" in history.history and len(history.history["cycle"]) == 2


def test_negative_weight_rejected():
    with pytest.raises(ValueError, match="lambda_gc"):
        make_cyclegan(lambda_gc=-1)
    with pytest.raises(ValueError, match="lambda_outline"):
        make_cyclegan(lambda_outline=-1)
    with pytest.raises(ValueError, match="outline_softness must be positive"):
        make_cyclegan(outline_softness=0.0)


def test_outline_loss_changes_the_generator_update():
    # An untrained generator's output (near 0) lies far above the default threshold, where the soft mask is
    # flat; a threshold and softness around it let the term's gradient show. SGD: Adam's first step is the
    # gradient's sign and could hide a smaller term.
    sgd = lambda: keras.optimizers.SGD(0.1)  # noqa: E731
    with_outline = make_cyclegan(lambda_outline=5.0, seed=3, optimizer=sgd, outline_threshold=0.0,
                                 outline_softness=0.5)
    without = make_cyclegan(seed=3, optimizer=sgd, outline_threshold=0.0, outline_softness=0.5)
    data = body_batch()
    with_outline.train_step(data)
    without.train_step(data)
    assert not np.allclose(with_outline.generator_mr_to_ct.trainable_variables[0].numpy(),
                           without.generator_mr_to_ct.trainable_variables[0].numpy())


def test_compile_required():
    model = CycleGAN(
        ResnetGenerator(filters=2, num_blocks=0), ResnetGenerator(filters=2, num_blocks=0),
        PatchDiscriminator(filters=2), PatchDiscriminator(filters=2), image_shape=(SIZE, SIZE, 1),
    )
    with pytest.raises(RuntimeError, match="compile"):
        model.train_step(batch())


# ---- image pool -----------------------------------------------------------

def images(values):
    return tf.constant(np.array(values, "float32")[:, None, None, None] * np.ones((1, 2, 2, 1), "float32"))


def test_pool_fills_then_returns_mixture():
    pool = ImagePool(pool_size=3, image_shape=(2, 2, 1), seed=1)
    out = pool.query(images([1, 2]))
    np.testing.assert_array_equal(out.numpy()[:, 0, 0, 0], [1, 2])  # filling: returned as is
    assert int(pool.count.numpy()) == 2
    out = pool.query(images([3, 4]))
    assert out.numpy()[0, 0, 0, 0] == 3  # fills the last slot
    assert int(pool.count.numpy()) == 3
    stored = set(pool.images.numpy()[:, 0, 0, 0])
    assert stored == {1, 2, 3} or 4 in stored  # the 4th may have been swapped in
    returned_history = 0
    for i in range(200):
        value = 100 + i
        out = pool.query(images([value])).numpy()[0, 0, 0, 0]
        returned_history += out != value
        assert out == value or out < value  # either itself or an older image
    assert 60 < returned_history < 140  # about half the queries return history


def test_pool_disabled_and_gradient_free():
    x = images([5, 6])
    assert ImagePool(pool_size=0, image_shape=(2, 2, 1)).query(x) is x
    with pytest.raises(ValueError, match="pool_size"):
        ImagePool(pool_size=-1)
