"""BPR and VBPR baselines of seed 000 §4.2, trained through `fit` on the review pipeline.

Score of user u for image v:
- BPR (Rendle et al. 2009): x_uv = beta_v + gamma_u . gamma_v.
- VBPR (He & McAuley 2016): x_uv = beta_v + gamma_u . gamma_v
  + theta_u . (E f_v) + beta' . f_v, with f_v the mean-pooled feature map of the
  same backbone as CFAN (seed 000: "visual features are also extracted by the same
  deep features").
(The offsets alpha and beta_u of VBPR cancel in every pairwise difference x_uv - x_uj,
so the pairwise loss never trains them; they are left out. sigmoid(x_uv) is a
ranking score, not a calibrated probability.)

Pairs. Each example (u, v, s_uv) of a batch is paired with a sampled other image j:
the image of another example of the batch (a random in-batch permutation in
training, the next example at inference, so that inference is deterministic). The
model outputs `pair_logit` = x_uv - x_uj, trained with
`tfaesthetic.losses.bpr.BPRLoss`: an image rated good (s_uv = 1) must outrank the
random image (classic BPR: "for each positive feedback, a negative sample is
randomly generated"), and, since our ratings are explicit, an image rated bad
(s_uv = 0) must rank below it (`use_negative_ratings`, default True). For AUC the
models output `user_rating` = sigmoid(x_uv).

Indices use the OOV rows of `tfaesthetic.models.cfan` (indices outside the
vocabulary map to the last row; `index_dropout` trains it): images not seen in
training all share the OOV image row, so BPR ranks them by nothing (constant per
user) while VBPR still ranks them by their visual features.

Reference:
    Rendle et al., "BPR: Bayesian personalized ranking from implicit feedback",
    UAI 2009; He & McAuley, "VBPR: Visual Bayesian personalized ranking from implicit
    feedback", AAAI 2016; seed 000 §4.2.
"""

import keras
from keras import ops

from tfaesthetic.losses.bpr import BPRLoss
from tfaesthetic.models import backbones as backbones_lib
from tfaesthetic.models.cfan import OOVIndex


@keras.saving.register_keras_serializable(package="tfaesthetic")
class InBatchNegatives(keras.layers.Layer):
    """Permutes tensors along the batch axis (one permutation for all of them).

    Training: a uniformly random permutation; inference: a shift by one.

    Args:
        seed: seed of the permutation.
        **kwargs: standard layer arguments.

    Call arguments:
        tensors: list of tensors with the same batch size.
        training: Python bool.

    Returns:
        list of the permuted tensors.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, tensors, training=None):
        batch = ops.shape(tensors[0])[0]
        order = ops.arange(batch, dtype="int32")
        if training:
            order = keras.random.shuffle(order, seed=self.seed_generator)
        else:
            order = ops.mod(order + 1, batch)
        return [ops.take(t, order, axis=0) for t in tensors]

    def compute_output_shape(self, shapes):
        return list(shapes)

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="tfaesthetic")
class BPR(keras.Model):
    """BPR, or VBPR with `visual=True`.

    Args:
        num_users: users in the records; one OOV row is added.
        num_images: training images (`manifest["num_train_images"]`); one OOV row is added.
        factor_dim: latent factor size of gamma_u, gamma_v (seed 000 §4.1: k = 50).
        visual: add the VBPR visual term (needs `image`).
        visual_dim: size of theta_u and of the projection E f_v.
        backbone: backbone name for VBPR.
        image_size: VBPR input side; default 320 for vgg16, else the backbone's.
        backbone_weights: None, "imagenet" or a weights file (construction only).
        backbone_trainable: fine-tune the backbone (the paper's VBPR uses fixed
            features).
        l2: L2 regularisation of the embeddings (BPR's lambda_Theta).
        index_dropout: training fraction of indices replaced by the OOV rows.
        use_negative_ratings: passed to the default `BPRLoss`.
        seed: seed of the dropout and the negative sampling.
        **kwargs: standard model arguments.

    Call arguments:
        inputs: dict with `user_index`, `image_index` (and `image` for VBPR).
        training: Python bool.

    Reference:
        Rendle et al., UAI 2009; He & McAuley, AAAI 2016, Eq. 2.
    """

    def __init__(
        self,
        num_users,
        num_images,
        factor_dim=50,
        visual=False,
        visual_dim=50,
        backbone="vgg16",
        image_size=None,
        backbone_weights=None,
        backbone_trainable=False,
        l2=1e-5,
        index_dropout=0.1,
        use_negative_ratings=True,
        seed=None,
        **kwargs,
    ):
        if visual and image_size is None:
            image_size = 320 if backbone == "vgg16" else backbones_lib.default_image_size(backbone)
        regularizer = keras.regularizers.L2(l2) if l2 else None

        # === Layers ===
        user_oov = OOVIndex(num_users, index_dropout, seed=seed, name="user_oov")
        image_oov = OOVIndex(num_images, index_dropout, seed=None if seed is None else seed + 1, name="image_oov")
        init = keras.initializers.RandomNormal(stddev=0.1)
        user_factors = keras.layers.Embedding(
            num_users + 1, factor_dim, embeddings_initializer=init, embeddings_regularizer=regularizer,
            name="user_factors",
        )
        image_factors = keras.layers.Embedding(
            num_images + 1, factor_dim, embeddings_initializer=init, embeddings_regularizer=regularizer,
            name="image_factors",
        )
        image_bias = keras.layers.Embedding(
            num_images + 1, 1, embeddings_initializer="zeros", embeddings_regularizer=regularizer, name="image_bias"
        )
        if visual:
            feature_extractor = backbones_lib.get_backbone(
                backbone, image_size=image_size, weights=backbone_weights, trainable=backbone_trainable
            )
            user_visual = keras.layers.Embedding(
                num_users + 1, visual_dim, embeddings_initializer=init, embeddings_regularizer=regularizer,
                name="user_visual_factors",
            )
            visual_projection = keras.layers.Dense(visual_dim, use_bias=False, name="visual_projection")
            visual_bias = keras.layers.Dense(1, use_bias=False, name="visual_bias")
        negatives = InBatchNegatives(seed=None if seed is None else seed + 2, name="negatives")

        # === Functional graph ===
        inputs = {
            "image_index": keras.Input(shape=(), dtype="int32", name="image_index"),
            "user_index": keras.Input(shape=(), dtype="int32", name="user_index"),
        }
        if visual:
            inputs["image"] = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="image")
        user_row = user_oov(inputs["user_index"])
        image_row = image_oov(inputs["image_index"])
        user_vector = user_factors(user_row)
        item_vector = image_factors(image_row)
        item_bias = ops.squeeze(image_bias(image_row), -1)
        if visual:
            pooled = ops.mean(feature_extractor(inputs["image"]), axis=(1, 2))
            user_vector = ops.concatenate([user_vector, user_visual(user_row)], axis=-1)
            item_vector = ops.concatenate([item_vector, visual_projection(pooled)], axis=-1)
            item_bias = item_bias + ops.squeeze(visual_bias(pooled), -1)
        score = item_bias + ops.sum(user_vector * item_vector, axis=-1)
        other_vector, other_bias = negatives([item_vector, item_bias])
        pair_logit = item_bias - other_bias + ops.sum(user_vector * (item_vector - other_vector), axis=-1)
        outputs = {"user_rating": ops.sigmoid(score), "pair_logit": pair_logit}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.num_users = num_users
        self.num_images = num_images
        self.factor_dim = factor_dim
        self.visual = visual
        self.visual_dim = visual_dim
        self.backbone = backbone
        self.image_size = image_size
        self.backbone_weights = backbone_weights
        self.backbone_trainable = backbone_trainable
        self.l2 = l2
        self.index_dropout = index_dropout
        self.use_negative_ratings = use_negative_ratings
        self.seed = seed

    @classmethod
    def from_manifest(cls, manifest, **kwargs):
        """Builds the model sized from a records manifest."""
        sizes = {"num_users": int(manifest["num_users"]), "num_images": int(manifest["num_train_images"])}
        sizes.update(kwargs)
        return cls(**sizes)

    @property
    def input_keys(self):
        """Feature keys the model reads."""
        return tuple(self.input.keys())

    @property
    def output_keys(self):
        """Keys of the output dict."""
        return tuple(self.output.keys())

    def prepare_batch(self, features, labels):
        """Features the model reads; labels `{"pair_logit": s_uv, "user_rating": s_uv}`.

        `pair_logit` carries the loss, `user_rating` the AUC metric.
        """
        rating = labels["user_rating"]
        return {k: features[k] for k in self.input_keys}, {"pair_logit": rating, "user_rating": rating}

    def default_losses(self):
        """`{"pair_logit": BPRLoss()}` for `compile(loss=...)`."""
        return {"pair_logit": BPRLoss(use_negative_ratings=self.use_negative_ratings)}

    def default_loss_weights(self):
        return {"pair_logit": 1.0}

    def default_metrics(self):
        """AUC of sigmoid(x_uv) against s_uv."""
        return {"user_rating": [keras.metrics.AUC(name="auc")]}

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_users": self.num_users,
            "num_images": self.num_images,
            "factor_dim": self.factor_dim,
            "visual": self.visual,
            "visual_dim": self.visual_dim,
            "backbone": self.backbone,
            "image_size": self.image_size,
            # Weights travel in the saved file; never re-download them on load.
            "backbone_weights": None,
            "backbone_trainable": self.backbone_trainable,
            "l2": self.l2,
            "index_dropout": self.index_dropout,
            "use_negative_ratings": self.use_negative_ratings,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfaesthetic")
class VBPR(BPR):
    """VBPR: `BPR` with the visual term (He & McAuley 2016); see `BPR` for the arguments.

    Reference:
        He & McAuley, "VBPR: Visual Bayesian personalized ranking from implicit
        feedback", AAAI 2016, Eq. 2; seed 000 §4.2.
    """

    def __init__(self, num_users, num_images, **kwargs):
        kwargs["visual"] = True
        super().__init__(num_users, num_images, **kwargs)
