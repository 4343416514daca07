"""The history pool of generated images that CycleGAN's discriminators learn from."""

from __future__ import annotations

import tensorflow as tf


class ImagePool(tf.Module):
    """A buffer of previously generated images (Shrivastava et al.; Zhu et al.).

    While the pool is not full, each query image is stored and returned as is.
    Once full, each image is, with probability one half, swapped with a
    randomly chosen stored image (the stored one is returned), and otherwise
    returned as is. Discriminators thus see a mix of current and past
    generator outputs, which damps oscillation.

    The buffer lives in variables that are local to each replica under a
    distribution strategy (``ON_READ``; a checkpoint stores the first
    replica's copy), so the pool works inside ``strategy.run`` and is saved
    and restored with the model. Create it under the strategy's scope.

    Args:
        pool_size: images kept; 0 disables the pool. Defaults to `50`.
        image_shape: ``(height, width, channels)`` of the images.
        seed: seed of the pool's random choices. Defaults to `None`.
    """

    def __init__(self, pool_size=50, image_shape=(256, 256, 1), seed=None, name=None):
        super().__init__(name=name)
        if int(pool_size) != pool_size or pool_size < 0:
            raise ValueError(f"pool_size must be a non-negative integer. Received: pool_size={pool_size}")
        self.pool_size = int(pool_size)
        self.image_shape = tuple(int(s) for s in image_shape)
        local = dict(
            trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        self.images = tf.Variable(
            tf.zeros((max(self.pool_size, 1),) + self.image_shape), name="images", **local
        )
        self.count = tf.Variable(0, dtype=tf.int32, name="count", **local)
        self._seed = seed

    def query(self, images):
        """Images for the discriminator, updating the pool. Shape and dtype of ``images``."""
        if self.pool_size == 0:
            return images
        dtype = images.dtype
        images = tf.cast(tf.stop_gradient(images), tf.float32)
        n = tf.shape(images)[0]
        size = self.pool_size

        def body(i, buffer, count, out):
            image = images[i]
            not_full = count < size
            pick = tf.random.uniform([], 0, size, dtype=tf.int32, seed=self._seed)
            swap = tf.logical_and(
                tf.logical_not(not_full), tf.random.uniform([], seed=self._seed) > 0.5
            )
            returned = tf.where(swap, tf.gather(buffer, pick), image)
            slot = tf.where(not_full, count, pick)
            buffer = tf.cond(
                tf.logical_or(not_full, swap),
                lambda: tf.tensor_scatter_nd_update(buffer, [[slot]], image[None]),
                lambda: buffer,
            )
            count = tf.where(not_full, count + 1, count)
            return i + 1, buffer, count, out.write(i, returned)

        out = tf.TensorArray(tf.float32, size=n, element_shape=self.image_shape)
        _, buffer, count, out = tf.while_loop(
            lambda i, *_: i < n,
            body,
            (tf.constant(0), self.images.read_value(), self.count.read_value(), out),
        )
        self.images.assign(buffer)
        self.count.assign(count)
        return tf.cast(out.stack(), dtype)
