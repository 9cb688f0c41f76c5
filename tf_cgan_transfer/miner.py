"""MineGAN's miner (Wang et al., CVPR 2020): new classes mined from a pretrained G's inputs.

A `Miner` maps a latent z and a label over N new classes to what a pretrained
class-conditional BigGAN over K old classes takes: a latent z' and class weights over the
K old classes. `biggan.Generator(conditioning="minegan")` puts one in front of the
pretrained body (docs/method.md §5, "minegan").
"""

import tensorflow as tf

DEFAULT_HIDDEN_DIM = 256


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class Miner(tf.keras.layers.Layer):
    """Class-conditioned miner: `(z [B, dz], y [B, N]) -> (z' [B, dz], w [B, K])`.

    For a one-hot label y of new class n it computes

        h1 = relu(z W_0 + b_0 + E[n])          # = relu([z ; e_n] W_0' + b_0), e_n folded in
        h2 = relu(h1 W_1 + b_1)
        z' = z + h2 W_out + b_out              # a residual move of z
        w  = softmax(L[n])                     # weights over the K old classes

    and, for a mixture y over new classes, `E` and `softmax(L)` are mixed by y
    (`y E`, `y softmax(L)`), so the class weights stay a convex mixture of old classes.

    `E [N, H]` is each new class's input to the first layer: MineGAN's concatenated class
    vector e_n times the first layer's class rows, stored as one product (the factored
    form adds parameters but no function). `W_out`, `b_out` start at zero, so z' = z
    before training and the miner only learns where in the latent space each new class
    lives; `L [N, K]` starts at zero, so every new class starts as the uniform mixture of
    the old classes. `E` starts N(0, 1), at the scale of z's own units, so the new classes'
    gradients differ from the first step on; `W_0`, `W_1` are Glorot-uniform, biases 0.
    Weights: `class_embedding` (E), `kernel_0`, `bias_0`, `kernel_1`, `bias_1`,
    `kernel_out`, `bias_out`, `class_logits` (L): `N (H + K) + 2 dz H + H^2 + 2 H + dz`
    parameters.

    Everything is float32 (like the other conditioning layers, `layers.FLOAT32`): z'
    feeds `G_linear` and the class weights the class embedding, both float32.

    Args:
      num_classes: N, the new classes.
      num_source_classes: K, the old classes of the pretrained generator.
      hidden_dim: H, the width of both hidden layers.

    Call arguments:
      z: `[B, dz]` latents (dz is fixed by the first call).
      y: `[B, N]` float one-hot labels or mixtures over the new classes.

    Returns:
      `(z' [B, dz], w [B, K])`, float32.

    Example:
      >>> miner = Miner(num_classes=3, num_source_classes=5, hidden_dim=16)
      >>> z_mined, w = miner(tf.zeros([2, 8]), tf.one_hot([0, 2], 3))
      >>> z_mined.shape, w.shape  # w == 1/5 everywhere before training
      (TensorShape([2, 8]), TensorShape([2, 5]))
    """

    def __init__(self, num_classes, num_source_classes, hidden_dim=DEFAULT_HIDDEN_DIM, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.num_source_classes = num_source_classes
        self.hidden_dim = hidden_dim

    def build(self, input_shape):
        dim_z = int(input_shape[-1])
        n, k, h = self.num_classes, self.num_source_classes, self.hidden_dim

        def weight(name, shape, initializer):
            return self.add_weight(
                name, shape=shape, initializer=initializer, experimental_autocast=False
            )

        self.class_embedding = weight(
            "class_embedding", [n, h], tf.keras.initializers.RandomNormal(stddev=1.0)
        )
        self.kernel_0 = weight("kernel_0", [dim_z, h], "glorot_uniform")
        self.bias_0 = weight("bias_0", [h], "zeros")
        self.kernel_1 = weight("kernel_1", [h, h], "glorot_uniform")
        self.bias_1 = weight("bias_1", [h], "zeros")
        self.kernel_out = weight("kernel_out", [h, dim_z], "zeros")
        self.bias_out = weight("bias_out", [dim_z], "zeros")
        self.class_logits = weight("class_logits", [n, k], "zeros")
        super().build(input_shape)

    def class_weights(self, y):
        """`[B, K]`: the old-class mixture of labels `y` `[B, N]` (rows sum to 1 for
        one-hot or convex y)."""
        return tf.matmul(tf.cast(y, tf.float32), tf.nn.softmax(self.class_logits, axis=-1))

    def call(self, z, y):
        z = tf.cast(z, tf.float32)
        y = tf.cast(y, tf.float32)
        h = tf.nn.relu(
            tf.matmul(z, self.kernel_0) + self.bias_0 + tf.matmul(y, self.class_embedding)
        )
        h = tf.nn.relu(tf.matmul(h, self.kernel_1) + self.bias_1)
        return z + tf.matmul(h, self.kernel_out) + self.bias_out, self.class_weights(y)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            num_source_classes=self.num_source_classes,
            hidden_dim=self.hidden_dim,
        )
        return config
