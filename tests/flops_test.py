"""Tests of benchmarks/flops.py against FLOP counts summed by hand from the layer shapes."""

import tensorflow as tf

from benchmarks import flops
from tf_cgan_transfer import biggan
from tf_cgan_transfer import discriminator as discriminator_lib
from tf_cgan_transfer import transfer


def conv(size, k, cin, cout):
    return 2 * size * size * k * k * cin * cout


def dense(cin, cout):
    return 2 * cin * cout


# Self-attention on 16x16x32: theta, phi (32 -> 4), g (32 -> 16), o_conv (16 -> 32) as 1x1
# convs, theta . phi^T ([256, 4] x [4, 64]) and attention . g ([256, 64] x [64, 16]).
ATTENTION_16x16x32 = (
    2 * conv(16, 1, 32, 4) + conv(16, 1, 32, 16) + conv(16, 1, 16, 32)
    + 2 * 256 * 64 * 4 + 2 * 256 * 64 * 16
)  # fmt: skip

# biggan.Generator(32, ch=8, num_classes=12, dim_z=32, shared_dim=32, attention_resolution=16):
# every block is 32 channels wide, z splits into 4 chunks of 8, blocks go 4 -> 8 -> 16 -> 32.
TINY_G = (
    dense(12, 32)  # shared class embedding `linear`
    + dense(8, 4 * 4 * 32)  # G_linear on the first z chunk
    + 3 * 4 * dense(8 + 32, 32)  # per block 2 HyperBNs x (gamma, beta) on [z chunk ; emb]
    + 2 * conv(8, 3, 32, 32) + conv(4, 1, 32, 32)  # block 0: conv0, conv1 at 8, conv_sc at 4
    + 2 * conv(16, 3, 32, 32) + conv(8, 1, 32, 32)  # block 1
    + ATTENTION_16x16x32  # after block 1
    + 2 * conv(32, 3, 32, 32) + conv(16, 1, 32, 32)  # block 2
    + conv(32, 3, 32, 3)  # conv_2d
)  # fmt: skip

# discriminator_lib.Discriminator(32, ch=8, num_classes=12, attention_resolution=16): 32 channels,
# blocks 32 -> 16 -> 8 -> 8 -> 8.
TINY_D = (
    conv(32, 3, 3, 32) + conv(32, 3, 32, 32) + conv(16, 1, 3, 32)  # block 0: sc after pool
    + ATTENTION_16x16x32
    + 2 * conv(16, 3, 32, 32) + conv(16, 1, 32, 32)  # block 1: sc before pool
    + 2 * 2 * conv(8, 3, 32, 32)  # blocks 2, 3: no shortcut conv (same width, no pooling)
    + dense(32, 1) + dense(12, 32)  # linear, projection embedding
)  # fmt: skip


def tiny_generator():
    return biggan.Generator(
        32, ch=8, num_classes=12, dim_z=32, shared_dim=32, attention_resolution=16
    )


def tiny_discriminator(num_classes=12):
    return discriminator_lib.Discriminator(
        32, ch=8, num_classes=num_classes, attention_resolution=16
    )


def by_name(products):
    return sorted(products, key=lambda p: (p.name, p.flops))


class ForwardFlopsTest(tf.test.TestCase):
    def test_generator_matches_the_hand_count(self):
        generator = tiny_generator()
        self.assertEqual(flops.total(flops.analytic_products(generator)), TINY_G)
        self.assertEqual(flops.total(flops.traced_products(generator.build_weights())), TINY_G)

    def test_discriminator_matches_the_hand_count(self):
        discriminator = tiny_discriminator()
        self.assertEqual(flops.total(flops.analytic_products(discriminator)), TINY_D)
        traced = flops.traced_products(discriminator.build_weights())
        self.assertEqual(flops.total(traced), TINY_D)
        self.assertLen([p for p in traced if p.kind == "attention"], 2)

    def test_traced_and_analytic_agree_product_by_product(self):
        models = [
            biggan.Generator(64, ch=8, num_classes=7, dim_z=30, shared_dim=16),
            biggan.Generator(32, ch=8, num_classes=5, shared_dim=0, hierarchical_z=False),
            discriminator_lib.Discriminator(64, ch=8, num_classes=3),
        ]
        for model in models:
            analytic = by_name(flops.analytic_products(model))
            self.assertEqual(by_name(flops.traced_products(model.build_weights())), analytic)

    def test_transferred_generators_agree(self):
        source = tiny_generator().build_weights()
        for method in ("kp_bn", "bn_only", "finetune", "minegan"):
            config = transfer.TransferConfig(method, 4, resolution=32)
            generator = transfer.build(config, source=source).generator
            traced = by_name(flops.traced_products(generator))
            self.assertEqual(traced, by_name(flops.analytic_products(generator)), method)
        # The last kp_bn BN: A (4 -> 12) twice, P, W^z (chunk 8) and R (4 rows) x 2 on 32.
        kp = transfer.build(transfer.TransferConfig("kp_bn", 4), source=source).generator
        block = [p for p in flops.traced_products(kp) if p.name.startswith("GBlock_2/HyperBN_1")]
        self.assertEqual(
            flops.total(block), 2 * dense(4, 12) + 2 * (dense(12, 32) + dense(8, 32) + dense(4, 32))
        )

    def test_unbuilt_model_is_not_traced(self):
        with self.assertRaisesRegex(ValueError, "not built"):
            flops.traced_products(tiny_generator())
        self.assertFalse(tiny_generator().built)
        self.assertEqual(flops.total(flops.products(tiny_generator())), TINY_G)


class IterationFlopsTest(tf.test.TestCase):
    def test_kp_bn_and_finetune_iterations(self):
        source = tiny_generator().build_weights()
        batch = 4
        d = tiny_discriminator(num_classes=4)
        d_fwd = TINY_D - dense(12, 32) + dense(4, 32)  # 4 new classes in the embedding
        d_attention = 2 * 256 * 64 * 4 + 2 * 256 * 64 * 16  # backward: 2 gradients each
        for method in ("kp_bn", "finetune"):
            models = transfer.build(transfer.TransferConfig(method, 4), source=source)
            g_products = flops.traced_products(models.generator)
            g_fwd = flops.total(g_products)
            g_attention = sum(p.flops for p in g_products if p.kind == "attention")
            trained = sum(
                p.flops for p in g_products if p.kind != "attention" and p.variables[0].trainable
            )
            if method == "kp_bn":  # only the knowledge-propagation BNs learn
                trained = sum(p.flops for p in g_products if p.kind == "kp_bn")
            d_backward_inputs = d_fwd + d_attention
            expected_d_step = (
                batch * g_fwd
                + 2 * batch * d_fwd
                + 2 * batch * (d_backward_inputs + d_fwd - d_attention)
            )
            expected_g_step = batch * (
                g_fwd + d_fwd + d_backward_inputs + (g_fwd + g_attention) + trained
            )
            result = flops.iteration_flops(
                g_products,
                flops.traced_products(d.build_weights()),
                batch,
                g_trainable=flops.trainable_in(models.g_variables),
                d_trainable=flops.trainable_in(d.trainable_variables),
            )
            self.assertEqual(result["g_forward"], g_fwd)
            self.assertEqual(result["d_forward"], d_fwd)
            self.assertEqual(result["d_step"], expected_d_step, method)
            self.assertEqual(result["g_step"], expected_g_step, method)
            self.assertEqual(result["iteration"], expected_d_step + expected_g_step)
            # The analytic path with the method's rule gives the same.
            analytic = flops.iteration_flops(
                flops.analytic_products(models.generator),
                flops.analytic_products(d),
                batch,
                g_trainable=flops.analytic_g_trainable(method),
            )
            self.assertEqual(analytic, result)

    def test_two_d_steps(self):
        g, d = flops.analytic_products(tiny_generator()), flops.analytic_products(
            tiny_discriminator()
        )
        one = flops.iteration_flops(g, d, 8)
        two = flops.iteration_flops(g, d, 8, num_d_steps=2)
        self.assertEqual(two["iteration"], 2 * one["d_step"] + one["g_step"])

    def test_unknown_method_rule(self):
        with self.assertRaisesRegex(ValueError, "trainable_in"):
            flops.analytic_g_trainable("bn_only")

    def test_minegan_miner_stage_trains_the_miner_products(self):
        models = transfer.build(
            transfer.TransferConfig("minegan", 4), source=tiny_generator().build_weights()
        )
        products = flops.traced_products(models.generator)
        trained = {id(v) for v in models.g_variables}
        by_rule = [p.name for p in products if flops.analytic_g_trainable("minegan")(p)]
        by_variables = [p.name for p in products if p.variables and id(p.variables[0]) in trained]
        self.assertEqual(by_rule, by_variables)
        self.assertLen(by_rule, 5)


class Biggan128Test(tf.test.TestCase):
    """The full-size figures (analytic: nothing of 70M parameters is built)."""

    def test_forward_and_iteration(self):
        g = flops.analytic_products(biggan.Generator(128))
        d = flops.analytic_products(discriminator_lib.Discriminator(128, num_classes=5))
        self.assertAllClose(flops.total(g) / 1e9, 40.2, atol=0.05)
        self.assertAllClose(flops.total(d) / 1e9, 21.68, atol=0.05)
        kp = biggan.Generator(128, num_classes=5, conditioning="kp_bn", num_source_classes=1000)
        result = flops.iteration_flops(
            flops.analytic_products(kp), d, 8, g_trainable=flops.analytic_g_trainable("kp_bn")
        )
        self.assertAllClose(result["iteration"] / 1e9, 2365, atol=5)
        finetune = flops.iteration_flops(flops.analytic_products(biggan.Generator(128)), d, 8)
        # finetune adds G's weight gradients: a batch of G forwards without the two
        # attention matmuls (1.0 GFLOP/image, no weights).
        extra = (finetune["iteration"] - result["iteration"]) / 1e9
        self.assertAllClose(extra, 8 * (40.2 - 1.0), atol=2)

    def test_built_generator_agrees_with_the_architecture(self):
        generator = biggan.Generator(128).build_weights()  # ~10 s
        traced = by_name(flops.traced_products(generator))
        self.assertEqual(traced, by_name(flops.analytic_products(generator)))
        # The hub places the shortcut conv after upsampling; ours convolves first (a 1x1
        # conv commutes with nearest upsampling), a quarter of the FLOPs.
        sc = {p.name: p.flops for p in traced if p.name.endswith("conv_sc")}
        self.assertEqual(sc["GBlock_4/conv_sc"], conv(64, 1, 192, 96))


if __name__ == "__main__":
    tf.test.main()
