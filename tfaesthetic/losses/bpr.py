"""Pairwise ranking loss of BPR / VBPR (Rendle et al. 2009; He & McAuley 2016).

The BPR models (`tfaesthetic.models.bpr`) output, next to `user_rating`, a
`pair_logit` d = x_uv - x_uj: the score of the reviewed image v minus the score of
a sampled other image j for the same user u (an in-batch shuffle). For an image the
user rated good (s_uv = 1) the BPR criterion is -ln sigma(x_uv - x_uj): v should
rank above a random image. Our data also holds explicit dislikes (s_uv = 0); with
`use_negative_ratings=True` those contribute -ln sigma(x_uj - x_uv) (a disliked image
should rank below a random one); with False they contribute 0 (classic BPR, positive
feedback only).
"""

import keras
from keras import ops


def bpr_loss(y_true, pair_logit, use_negative_ratings=True):
    """Per-example BPR loss.

    `s * softplus(-d) + (1 - s) * softplus(d) * [use_negative_ratings]`, where
    `softplus(-d) = -ln sigma(d)`; labels below 0 (unknown) give 0.

    Args:
        y_true: `[B]` ratings s_uv in {0, 1}.
        pair_logit: `[B]` differences d = x_uv - x_uj.
        use_negative_ratings: also use s_uv = 0 examples (see the module docstring).

    Returns:
        `[B]` per-example losses.

    Reference:
        Rendle et al., "BPR: Bayesian personalized ranking from implicit feedback",
        UAI 2009, Eq. (BPR-Opt); seed 000 §4.2.
    """
    s = ops.reshape(ops.cast(y_true, "float32"), (-1,))
    d = ops.reshape(ops.cast(pair_logit, "float32"), (-1,))
    positive = ops.cast(ops.equal(s, 1.0), "float32")
    negative = ops.cast(ops.equal(s, 0.0), "float32") * (1.0 if use_negative_ratings else 0.0)
    return positive * ops.softplus(-d) + negative * ops.softplus(d)


@keras.saving.register_keras_serializable(package="tfaesthetic")
class BPRLoss(keras.losses.Loss):
    """Loss wrapper of `bpr_loss` (use on the `pair_logit` output).

    Args:
        use_negative_ratings: also use s_uv = 0 examples.
        name: loss name.
        reduction: Keras reduction.
        **kwargs: standard loss arguments.

    Reference:
        Rendle et al., UAI 2009.
    """

    def __init__(self, use_negative_ratings=True, name="bpr_loss", reduction="sum_over_batch_size", **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.use_negative_ratings = use_negative_ratings

    def call(self, y_true, y_pred):
        return bpr_loss(y_true, y_pred, self.use_negative_ratings)

    def get_config(self):
        config = super().get_config()
        config.update({"use_negative_ratings": self.use_negative_ratings})
        return config
