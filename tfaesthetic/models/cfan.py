"""CFAN: collaborative-filtering attentive network for personalised aesthetics (seed 000).

Inputs (dict, the keys of the review-mode pipeline; which ones a variant uses is
`CFAN.input_keys`): `image` `[B,S,S,3]` float pixels in [0, 255], `image_index`
`[B]` int, `user_index` `[B]` int, `review` `[B,L]` int token ids (0 = padding).

Outputs (dict; heads present per variant): `user_rating` `[B]` sigmoid (y_hat_uv),
`tag` `[B,num_tags]` softmax (z_hat_uv), `agnostic_rating` `[B]` sigmoid
(beta_hat_v), `attention` `[B,h,w]` (a_uv, CFAN variants).

Graph (§3.1, Fig. 3):
- q_v = ImageEmbedding(image_index); gamma_u = UserEmbedding(user_index).
- f_v = backbone(image) `[B,h,w,D]`. CFAN: h_uv = ReviewEncoder(review) (Eq. 3-4),
  (f_uv, a_uv) = ConvAttentionKernel(f_v, h_uv) (Eq. 5); CFN: f_uv = f_v.
- q_iv = Merge(q_v, W_i mean_hw(f_uv)) (Eq. 1; mean_hw of the attended map is the
  attention-weighted sum sum_ij a_ij f_v,ij).
- y_hat_uv = sigmoid(MLP(gamma_u * q_iv)) (Eq. 2: the element-wise product of the
  user and image codes through hidden layers, §4.1 "after element-wise product the
  result can be used to predict").
- Task-specific heads (§3.1 "the added fully-connected layers ... are task-specific")
  on the image-only code q_v^0 = Merge(q_v, W_i mean_hw(f_v)) (same q_v and W_i, no
  user attention, since both targets are properties of the image): tag softmax and
  user-agnostic rating sigmoid.

Agnostic residual (`agnostic_residual=True`; a practical extension of Eq. 2, not the
paper): y_hat_uv = sigmoid(stop_gradient(logit beta_hat_v) + g(gamma_u * q_iv)). The
personalised rating starts from the user-agnostic one and the interaction learns only
the user's deviation (taste, bias, the review's verdict). Without a review the
prediction is then at worst the user-agnostic baseline plus a learned taste term,
instead of having to relearn image quality through the per-user path. The stop
gradient keeps beta_hat_v trained by its own loss only, so it remains the baseline
the personalised paths are compared with.

Visual taste (`visual_taste=k > 0`; another practical extension, not the paper): the
user logit also gains VBPR's visual preference term theta_u . (E mean_hw f_v) (He &
McAuley, AAAI 2016), a per-user linear function of the whole image's pooled features
with theta_u a k-vector per user and E a `[D, k]` projection. It serves the no-review
path on images never seen in training: measured on the demo (issue 10), the Eq. 2
interaction gamma_u * q_iv fitted users against the looks of their training images
(its no-review deviation from beta_hat_v correlated 0.10-0.26 with the users' true
hue taste, with or without batch normalisation, raw colour features or reviews),
while this term is the one VBPR ranks cold images with.

Three more extensions (not the paper), for images seen in training (the warm
protocol: a user's unreviewed image that other users reviewed and the crowd voted on).
Measured on the demo (issue 10, README "Personalised metrics"; preset `demo_cfan_warm`),
together and with interaction dropout 0.5 they lift the warm no-review per-user AUC
from 0.74 to 0.80 (mean of seeds 0-2; the dropout alone: 0.73):
- `agnostic_target="share"`: beta_hat_v is trained on the parser's `agnostic_share`,
  the share of votes above the threshold, instead of `agnostic_rating`, 1 when the
  mean vote is above it ("binary", the paper). The soft label keeps how clearly the
  crowd liked the image, which ranks a user's images better (on the demo's test
  reviews: per-user AUC 0.76 for the share, 0.70 for the binary label). The evaluation
  always scores beta_hat_v against the binary label.
- `agnostic_image_bias=True`: the logit of beta_hat_v gains b_v, a learned offset per
  training image (a `[num_images + 1, 1]` table, zero at the start, trained by the
  user-agnostic loss only), so that the crowd's verdict on a training image is held
  exactly rather than through the image code; every unseen image shares the OOV row.
- `residual_scale=True` (with `agnostic_residual`): the residual base is a * logit
  beta_hat_v with a learned scalar a (1 at the start, trained by the user loss), so
  the user path can weigh the crowd's verdict against its own deviation.

Indices and out-of-vocabulary (OOV) rows. Records hold 0-based indices; images are
numbered training-first. The model embeds `num_users + 1` users and `num_images + 1`
images (pass the manifest's `num_train_images`); the last row is the OOV row. Any
index outside `[0, n)` is mapped to it inside the model (so serving is safe), which is
what happens to every validation/test image. The OOV rows are trained by
`index_dropout`: in training, that fraction of user and image indices is replaced by
the OOV index. `tfaesthetic.metrics.ranking.evaluate_ranking` counts OOV lookups.

No review (practical serving). Each user also has a learned taste profile p_u in the
review-encoding space. Where the review is empty (all padding), p_u stands in for
h_uv, so the attention kernel is K = sigmoid(W_k p_u + b_k), the user's learned
kernel. p_u is trained (a) by an auxiliary loss `profile_weight * mean ||p_u -
stop_gradient(h_uv)||^2` over examples with a review, in training only (a regulariser,
not part of the Eq. 6 objective that the validation loss measures; matching the encoding matches
the kernel, a fixed function of it, with E numbers per user instead of k*k*D), and
(b) end to end through `review_dropout`: in training that fraction of reviews is
treated as absent. `predict_without_review` runs this path explicitly.

Unknown users (index outside `[0, num_users)`, e.g. `CFAN.UNKNOWN_USER`): at
inference (`training=False`, which is also how the export calls the model) the
variant with the user-agnostic head (`cfan_3task`) returns beta_hat_v as
`user_rating` (layer `UnknownUserFallback`; this is the only place the fallback is
made). In training the OOV user row's own prediction is kept, so the s_uv labels of
anonymous reviews (the parser maps user -1 to the OOV row) train the user-specific
head, never beta_hat_v through the user loss. The other variants use the OOV user
row at inference too (an "average user" trained by `index_dropout` and by the
anonymous reviews).

Variants (seed 000 §4.2): `cfn_pure_2task` (ids only; user rating + tag),
`cfn_1task` (ids + image), `cfan_1task` (+ review attention), `cfan_2task` (+ tag),
`cfan_3task` (+ user-agnostic rating; the full model).

Reference:
    Wang et al., "Personalized image aesthetic assessment with reviews and
    collaborative filtering", IJCAI 2018 (seed 000), §3.1 Eq. 1-6, §4.1-4.2.
"""

import keras
from keras import ops

from tfaesthetic.layers.conv_attention_kernel import ConvAttentionKernel
from tfaesthetic.layers.review_encoder import ReviewEncoder
from tfaesthetic.losses.cfan import MaskedTagCrossentropy, RatingCrossentropy
from tfaesthetic.metrics.ranking import MaskedBinaryAccuracy
from tfaesthetic.models import backbones as backbones_lib

# variant -> (uses image, uses review, tasks)
VARIANTS = {
    "cfn_pure_2task": (False, False, ("user_rating", "tag")),
    "cfn_1task": (True, False, ("user_rating",)),
    "cfan_1task": (True, True, ("user_rating",)),
    "cfan_2task": (True, True, ("user_rating", "tag")),
    "cfan_3task": (True, True, ("user_rating", "tag", "agnostic_rating")),
}
MERGES = ("multiply", "add", "concat")
# The label beta_hat_v is trained on: the parser's "agnostic_rating" (1 when the mean
# score is above the threshold; the paper) or "agnostic_share" (the share of votes above it).
AGNOSTIC_TARGETS = {"binary": "agnostic_rating", "share": "agnostic_share"}
# Seed 000 §4.1: 320x320 inputs to VGG16 (a 10x10x512 feature map).
PAPER_IMAGE_SIZE = 320


@keras.saving.register_keras_serializable(package="tfaesthetic")
class OOVIndex(keras.layers.Layer):
    """Maps indices outside `[0, size)` to the OOV index `size`; index dropout in training.

    Args:
        size: number of in-vocabulary indices.
        rate: in training, fraction of indices replaced by `size`.
        seed: seed of the dropout.
        **kwargs: standard layer arguments.

    Call arguments:
        indices: int tensor `[B]`.
        training: Python bool.

    Returns:
        int32 tensor `[B]` in `[0, size]`.
    """

    def __init__(self, size, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"`rate` must be in [0, 1). Received: rate={rate}")
        self.size = size
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, indices, training=None):
        indices = ops.cast(indices, "int32")
        inside = ops.logical_and(indices >= 0, indices < self.size)
        oov = ops.full_like(indices, self.size)
        indices = ops.where(inside, indices, oov)
        if training and self.rate > 0:
            drop = keras.random.uniform(ops.shape(indices), seed=self.seed_generator) < self.rate
            indices = ops.where(drop, oov, indices)
        return indices

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "rate": self.rate, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="tfaesthetic")
class TasteProfile(keras.layers.Layer):
    """Per-user review-encoding profile p_u standing in for an absent review.

    Holds a `[num_rows, units]` table. Returns `h = h_uv` where the review is present
    and `p_u` where it is absent (or dropped with `review_dropout` in training), and
    in training adds `weight * mean_{reviewed} mean_e (p_u - stop_gradient(h_uv))^2`
    to the model's losses (only in training: it is a regulariser of the no-review
    path, not part of the Eq. 6 objective that validation monitors).

    Args:
        num_rows: rows of the profile table (users + the OOV row).
        units: size of the review encoding.
        review_dropout: in training, fraction of reviews treated as absent.
        weight: weight of the profile-matching loss.
        seed: seed of the review dropout.
        **kwargs: standard layer arguments.

    Call arguments:
        user_index: int `[B]` (already mapped into `[0, num_rows)`).
        encoding: float `[B, units]`, h_uv.
        has_review: bool `[B]`.
        training: Python bool.

    Returns:
        float `[B, units]`.
    """

    def __init__(self, num_rows, units, review_dropout=0.0, weight=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_rows = num_rows
        self.units = units
        self.review_dropout = review_dropout
        self.weight = weight
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, *args, **kwargs):
        self.profiles = self.add_weight(
            name="profiles", shape=(self.num_rows, self.units), initializer="zeros"
        )

    def call(self, user_index, encoding, has_review, training=None):
        profile = ops.take(self.profiles, user_index, axis=0)
        use_review = ops.cast(has_review, "bool")
        if training and self.weight:
            # A training-only regulariser: not part of the Eq. 6 objective, so it is
            # left out of the validation loss that selects the best epoch (the gap
            # grows while the encoder learns review-specific verdicts that one
            # profile per user cannot match).
            mask = ops.cast(use_review, encoding.dtype)
            gap = ops.mean(ops.square(profile - ops.stop_gradient(encoding)), axis=-1)
            self.add_loss(self.weight * ops.sum(mask * gap) / ops.maximum(ops.sum(mask), 1.0))
        if training and self.review_dropout > 0:
            keep = keras.random.uniform(ops.shape(user_index), seed=self.seed_generator) >= self.review_dropout
            use_review = ops.logical_and(use_review, keep)
        return ops.where(ops.expand_dims(use_review, -1), encoding, profile)

    def compute_output_shape(self, user_index_shape, encoding_shape, has_review_shape):
        return encoding_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_rows": self.num_rows,
                "units": self.units,
                "review_dropout": self.review_dropout,
                "weight": self.weight,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfaesthetic")
class UnknownUserFallback(keras.layers.Layer):
    """At inference, replaces the rating of users outside `[0, num_users)` by beta_hat_v.

    In training the user-specific rating passes through unchanged (labels of
    anonymous reviews, mapped to the OOV user row, must train the user-specific
    head, not the user-agnostic one).

    Args:
        num_users: number of known users.
        **kwargs: standard layer arguments.

    Call arguments:
        user_index: int `[B]`, the raw user indices (before OOV mapping).
        user_rating: float `[B]`, y_hat_uv.
        agnostic_rating: float `[B]`, beta_hat_v.
        training: Python bool.

    Returns:
        float `[B]`.

    Reference:
        Wang et al., IJCAI 2018 (seed 000), §3.1 Eq. 6 (the user-agnostic rating
        beta_hat_v); the fallback itself is a serving rule of this package.
    """

    def __init__(self, num_users, **kwargs):
        super().__init__(**kwargs)
        self.num_users = num_users

    def call(self, user_index, user_rating, agnostic_rating, training=None):
        if training:
            return user_rating
        user_index = ops.cast(user_index, "int32")
        known = ops.logical_and(user_index >= 0, user_index < self.num_users)
        return ops.where(known, user_rating, agnostic_rating)

    def compute_output_shape(self, user_index_shape, user_rating_shape, agnostic_rating_shape):
        return user_rating_shape

    def get_config(self):
        config = super().get_config()
        config.update({"num_users": self.num_users})
        return config


def merge_codes(mode, q_v, visual, projection=None):
    """Merge(q_v, W_i f_v) of Eq. 1: element-wise product (paper), sum, or concat + projection."""
    if mode == "multiply":
        return q_v * visual
    if mode == "add":
        return q_v + visual
    return projection(ops.concatenate([q_v, visual], axis=-1))


@keras.saving.register_keras_serializable(package="tfaesthetic")
class CFAN(keras.Model):
    """CFAN and its CFN baselines (seed 000): personalised aesthetic rating.

    See the module docstring for the graph, the OOV rows and the no-review /
    unknown-user paths.

    Args:
        num_users: users in the records (`manifest["num_users"]`); one OOV row is added.
        num_images: images with their own embedding, i.e. the training images
            (`manifest["num_train_images"]`); one OOV row is added.
        num_tags: semantic tags (`manifest["num_tags"]`).
        vocab_size: token ids incl. padding and OOV (`manifest["vocab_size"]`).
        variant: one of `VARIANTS`.
        backbone: backbone name (`tfaesthetic.models.backbones`); paper: "vgg16".
        image_size: input side; default 320 for vgg16 (§4.1), else the backbone's.
        backbone_weights: None, "imagenet" or a weights file, used at construction
            only (the saved model holds the weights; the config stores None).
        backbone_trainable: fine-tune the backbone.
        factor_dim: size k of the user/image codes (§4.1: "k is set as 50").
        hidden_units: hidden layers of the interaction f(gamma_u, q_iv) (Eq. 2).
        merge: Merge of Eq. 1: "multiply" (paper), "add" or "concat".
        embedding_dim: word embedding size of the review encoder.
        gru_units: GRU units per direction (h_uv has 2 * gru_units values).
        max_len: reviews are truncated to this many tokens.
        kernel_size: spatial size of the review kernel K of Eq. 5 (see
            `ConvAttentionKernel`; 1 gives a kernel of shape `[1, 1, D]`, K "has
            the same number of channels as f_v").
        scale_logits: divide the Eq. 5 logits by `sqrt(kernel_size**2 * D)`
            (default; a stabiliser that is not in the paper). False gives Eq. 5
            literally.
        dropout: dropout on the interaction's hidden layers.
        index_dropout: training fraction of user/image indices replaced by the OOV row.
        user_index_dropout: the same for the user indices only; None (default) uses
            `index_dropout`. A high image rate (to train the OOV image row that every
            cold image uses) with a low user rate keeps the user codes trained on most
            reviews.
        review_dropout: training fraction of reviews treated as absent (trains the
            taste profiles end to end).
        profile_weight: weight of the taste-profile matching loss (0 disables it).
        lambda_z: Eq. 6 weight of the tag loss (§4.1: 0.015).
        lambda_beta: Eq. 6 weight of the user-agnostic loss (§4.1: 1).
        agnostic_residual: a practical extension of Eq. 2 (not in the paper): the
            personalised rating is a per-user deviation from the user-agnostic one,
            y_hat_uv = sigmoid(stop_gradient(logit beta_hat_v) + g(gamma_u * q_iv)),
            with g the interaction MLP ending in a linear unit. Only variants with
            the user-agnostic head (`cfan_3task`) have beta_hat_v; the others
            ignore the option. See the module docstring.
        visual_taste: size k of VBPR's visual preference term theta_u . (E mean_hw
            f_v), added to the user logit (0, the default, leaves it out: the paper).
            Variants without images ignore it. See the module docstring.
        residual_scale: with `agnostic_residual`, weigh the residual base
            logit beta_hat_v by a learned scalar (an extension; see the module
            docstring). Ignored without `agnostic_residual`.
        agnostic_image_bias: add a learned offset per training image to the logit
            of beta_hat_v (an extension; see the module docstring). Only variants
            with the user-agnostic head use it.
        agnostic_target: the label beta_hat_v trains on, one of `AGNOSTIC_TARGETS`:
            "binary" (the paper) or "share" (see the module docstring).
        review_vectors: optional `[vocab_size, embedding_dim]` word vectors (e.g.
            from `tfaesthetic.layers.vectors.load_vectors`); not part of the config.
        freeze_embeddings: keep the word embeddings fixed.
        seed: seed of the index/review dropout.
        **kwargs: standard model arguments (e.g. `name`).

    Call arguments:
        inputs: dict with the keys `input_keys` of the variant.
        training: Python bool.

    Reference:
        Wang et al., IJCAI 2018 (seed 000), §3.1 Eq. 1-6, §4.1.
    """

    UNKNOWN_USER = -1

    def __init__(
        self,
        num_users,
        num_images,
        num_tags,
        vocab_size=2,
        variant="cfan_3task",
        backbone="vgg16",
        image_size=None,
        backbone_weights=None,
        backbone_trainable=True,
        factor_dim=50,
        hidden_units=(50,),
        merge="multiply",
        embedding_dim=100,
        gru_units=100,
        max_len=200,
        kernel_size=3,
        scale_logits=True,
        dropout=0.0,
        index_dropout=0.1,
        user_index_dropout=None,
        review_dropout=0.1,
        profile_weight=1.0,
        lambda_z=0.015,
        lambda_beta=1.0,
        agnostic_residual=False,
        residual_scale=False,
        visual_taste=0,
        agnostic_image_bias=False,
        agnostic_target="binary",
        review_vectors=None,
        freeze_embeddings=False,
        seed=None,
        **kwargs,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"Unknown CFAN variant. Expected one of {list(VARIANTS)}. Received: variant={variant!r}")
        if agnostic_target not in AGNOSTIC_TARGETS:
            raise ValueError(
                f"Unknown agnostic_target. Expected one of {list(AGNOSTIC_TARGETS)}. Received: agnostic_target={agnostic_target!r}"
            )
        if merge not in MERGES:
            raise ValueError(f"Unknown merge. Expected one of {list(MERGES)}. Received: merge={merge!r}")
        for name, value in (("num_users", num_users), ("num_images", num_images), ("num_tags", num_tags)):
            if int(value) < 1:
                raise ValueError(f"`{name}` must be >= 1. Received: {name}={value}")
        use_image, use_review, tasks = VARIANTS[variant]
        hidden_units = tuple(int(u) for u in hidden_units)
        if use_image and image_size is None:
            image_size = PAPER_IMAGE_SIZE if backbone == "vgg16" else backbones_lib.default_image_size(backbone)

        # === Layers ===
        user_rate = index_dropout if user_index_dropout is None else user_index_dropout
        user_oov = OOVIndex(num_users, user_rate, seed=seed, name="user_oov")
        image_oov = OOVIndex(num_images, index_dropout, seed=None if seed is None else seed + 1, name="image_oov")
        # §4.1: parameters other than the backbone are initialised from N(0, 1).
        user_embedding = keras.layers.Embedding(
            num_users + 1, factor_dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0), name="user_embedding"
        )
        image_embedding = keras.layers.Embedding(
            num_images + 1, factor_dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0), name="image_embedding"
        )
        if use_image:
            feature_extractor = backbones_lib.get_backbone(
                backbone, image_size=image_size, weights=backbone_weights, trainable=backbone_trainable
            )
            visual_projection = keras.layers.Dense(factor_dim, use_bias=False, name="visual_projection")
            merge_projection = (
                keras.layers.Dense(factor_dim, name="merge_projection") if merge == "concat" else None
            )
        if use_review:
            review_encoder = ReviewEncoder(
                vocab_size,
                embedding_dim=embedding_dim,
                units=gru_units,
                max_len=max_len,
                freeze_embeddings=freeze_embeddings,
                vectors=review_vectors,
                name="review_encoder",
            )
            taste_profile = TasteProfile(
                num_users + 1,
                2 * gru_units,
                review_dropout=review_dropout,
                weight=profile_weight,
                seed=None if seed is None else seed + 2,
                name="taste_profile",
            )
            attention_layer = ConvAttentionKernel(
                kernel_size=kernel_size, scale_logits=scale_logits, name="attention"
            )
        interaction = [keras.layers.Dense(u, activation="relu", name=f"interaction_{i}") for i, u in enumerate(hidden_units)]
        interaction_dropout = keras.layers.Dropout(dropout, name="interaction_dropout")
        visual_taste = int(visual_taste) if use_image else 0
        if visual_taste < 0:
            raise ValueError(f"`visual_taste` must be >= 0. Received: visual_taste={visual_taste}")
        if visual_taste:
            # VBPR's visual preference term theta_u . (E f_v) (see the class docstring);
            # small initial values as in VBPR.
            user_visual_taste = keras.layers.Embedding(
                num_users + 1, visual_taste,
                embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1), name="user_visual_taste",
            )
            taste_projection = keras.layers.Dense(visual_taste, use_bias=False, name="taste_projection")
        # Linear heads, the sigmoid applied in the graph (same weights as a sigmoid
        # Dense): the residual option adds the logits.
        rating_head = keras.layers.Dense(1, name="user_rating_head")
        if "tag" in tasks:
            tag_hidden = keras.layers.Dense(factor_dim, activation="relu", name="tag_hidden")
            tag_head = keras.layers.Dense(num_tags, activation="softmax", name="tag_head")
        if "agnostic_rating" in tasks:
            agnostic_hidden = keras.layers.Dense(factor_dim, activation="relu", name="agnostic_hidden")
            agnostic_head = keras.layers.Dense(1, name="agnostic_rating_head")
            unknown_user_fallback = UnknownUserFallback(num_users, name="unknown_user_fallback")
            if agnostic_residual and residual_scale:
                residual_scale_layer = keras.layers.Dense(
                    1, use_bias=False, kernel_initializer="ones", name="residual_scale"
                )
            if agnostic_image_bias:
                agnostic_bias_layer = keras.layers.Embedding(
                    num_images + 1, 1, embeddings_initializer="zeros", name="agnostic_image_bias"
                )

        # === Functional graph ===
        inputs = {
            "image_index": keras.Input(shape=(), dtype="int32", name="image_index"),
            "user_index": keras.Input(shape=(), dtype="int32", name="user_index"),
        }
        if use_image:
            inputs["image"] = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="image")
        if use_review:
            inputs["review"] = keras.Input(shape=(None,), dtype="int32", name="review")
        user_row = user_oov(inputs["user_index"])
        image_row = image_oov(inputs["image_index"])
        gamma_u = user_embedding(user_row)
        q_v = image_embedding(image_row)
        outputs = {}
        if use_image:
            feature_map = feature_extractor(inputs["image"])
            pooled = ops.mean(feature_map, axis=(1, 2))
            q_image = merge_codes(merge, q_v, visual_projection(pooled), merge_projection)
            if use_review:
                review = inputs["review"][:, :max_len] if max_len is not None else inputs["review"]
                has_review = ops.any(ops.not_equal(review, 0), axis=-1)
                encoding = taste_profile(user_row, review_encoder(review), has_review)
                attended, attention = attention_layer(feature_map, encoding)
                q_user_image = merge_codes(
                    merge, q_v, visual_projection(ops.mean(attended, axis=(1, 2))), merge_projection
                )
                outputs["attention"] = attention
            else:
                q_user_image = q_image
        else:
            q_image = q_user_image = q_v
        x = gamma_u * q_user_image
        for layer in interaction:
            x = interaction_dropout(layer(x))
        user_logit = ops.squeeze(rating_head(x), -1)
        if visual_taste:
            user_logit = user_logit + ops.sum(user_visual_taste(user_row) * taste_projection(pooled), axis=-1)
        if "tag" in tasks:
            outputs["tag"] = tag_head(tag_hidden(q_image))
        if "agnostic_rating" in tasks:
            agnostic_logit = ops.squeeze(agnostic_head(agnostic_hidden(q_image)), -1)
            if agnostic_image_bias:
                agnostic_logit = agnostic_logit + ops.squeeze(agnostic_bias_layer(image_row), -1)
            agnostic = ops.sigmoid(agnostic_logit)
            if agnostic_residual:
                # The user loss trains only the deviation; beta_hat_v is trained by
                # its own (lambda_beta) loss, so it stays the user-agnostic baseline.
                base = ops.stop_gradient(agnostic_logit)
                if residual_scale:
                    base = ops.squeeze(residual_scale_layer(ops.expand_dims(base, -1)), -1)
                user_logit = user_logit + base
            user_rating = unknown_user_fallback(inputs["user_index"], ops.sigmoid(user_logit), agnostic)
            outputs["agnostic_rating"] = agnostic
        else:
            user_rating = ops.sigmoid(user_logit)
        outputs["user_rating"] = user_rating
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.num_users = num_users
        self.num_images = num_images
        self.num_tags = num_tags
        self.vocab_size = vocab_size
        self.variant = variant
        self.backbone = backbone
        self.image_size = image_size
        self.backbone_weights = backbone_weights
        self.backbone_trainable = backbone_trainable
        self.factor_dim = factor_dim
        self.hidden_units = hidden_units
        self.merge = merge
        self.embedding_dim = embedding_dim
        self.gru_units = gru_units
        self.max_len = max_len
        self.kernel_size = kernel_size
        self.scale_logits = scale_logits
        self.dropout = dropout
        self.index_dropout = index_dropout
        self.user_index_dropout = user_index_dropout
        self.review_dropout = review_dropout
        self.profile_weight = profile_weight
        self.lambda_z = lambda_z
        self.lambda_beta = lambda_beta
        self.agnostic_residual = bool(agnostic_residual)
        self.residual_scale = bool(residual_scale)
        self.visual_taste = visual_taste
        self.agnostic_image_bias = bool(agnostic_image_bias)
        self.agnostic_target = agnostic_target
        self.freeze_embeddings = freeze_embeddings
        self.seed = seed

    # --- construction helpers -------------------------------------------------
    @classmethod
    def from_manifest(cls, manifest, **kwargs):
        """Builds a CFAN sized from a records manifest (`num_users`, `num_train_images`, ...)."""
        sizes = {
            "num_users": int(manifest["num_users"]),
            "num_images": int(manifest["num_train_images"]),
            "num_tags": max(1, int(manifest["num_tags"])),
            "vocab_size": int(manifest["vocab_size"]),
        }
        sizes.update(kwargs)
        return cls(**sizes)

    @property
    def input_keys(self):
        """Feature keys the variant reads."""
        return tuple(self.input.keys()) if isinstance(self.input, dict) else tuple(self.input_names)

    @property
    def output_keys(self):
        """Keys of the output dict."""
        return tuple(self.output.keys())

    @property
    def tasks(self):
        """Output keys trained with a loss."""
        return VARIANTS[self.variant][2]

    def prepare_batch(self, features, labels):
        """Keeps the features the model reads and the labels of its tasks (use in `dataset.map`).

        Outputs without a loss (`attention`) get a zero placeholder label: Keras'
        compiled metrics look a label up for every output of a dict model.
        """
        targets = {k: labels[k] for k in self.tasks}
        if "agnostic_rating" in targets:
            targets["agnostic_rating"] = labels[AGNOSTIC_TARGETS[self.agnostic_target]]
        for key in self.output_keys:
            if key not in targets:
                targets[key] = ops.zeros_like(ops.convert_to_tensor(labels["user_rating"]), dtype="float32")
        return {k: features[k] for k in self.input_keys}, targets

    def default_losses(self):
        """Per-output Eq. 6 losses for `compile(loss=...)`."""
        losses = {"user_rating": RatingCrossentropy(), "tag": MaskedTagCrossentropy(), "agnostic_rating": RatingCrossentropy()}
        return {k: losses[k] for k in self.tasks}

    def default_loss_weights(self):
        """Eq. 6 weights for `compile(loss_weights=...)`: 1, lambda_z, lambda_beta."""
        weights = {"user_rating": 1.0, "tag": float(self.lambda_z), "agnostic_rating": float(self.lambda_beta)}
        return {k: weights[k] for k in self.tasks}

    def default_metrics(self):
        """Streaming metrics for `compile(metrics=...)`: AUC of y_hat, accuracy of beta_hat.

        The accuracy skips labels -1 (images without votes) but, being streamed over
        review-mode batches, counts an image once per review;
        `tfaesthetic.metrics.ranking.evaluate_ranking` gives the per-image accuracy
        of seed 000 Fig. 7.
        """
        metrics = {"user_rating": [keras.metrics.AUC(name="auc")]}
        if "agnostic_rating" in self.tasks:
            metrics["agnostic_rating"] = [MaskedBinaryAccuracy(name="accuracy")]
        return metrics

    def predict_without_review(self, inputs, training=False):
        """The no-review path: the user's learned taste kernel replaces the review's.

        Args:
            inputs: dict of the variant's inputs; `review` may be absent.

        Returns:
            The output dict (the same as calling the model with an all-padding review).
        """
        inputs = {k: ops.convert_to_tensor(v) for k, v in inputs.items() if k in self.input_keys}
        if "review" in self.input_keys:
            batch = ops.shape(inputs["user_index"])[0]
            inputs["review"] = ops.zeros((batch, 1), dtype="int32")
        return self(inputs, training=training)

    def get_config(self):
        # A functional subclass: the config is the constructor arguments (the graph is
        # rebuilt from them), as keras-hub backbones do.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_users": self.num_users,
            "num_images": self.num_images,
            "num_tags": self.num_tags,
            "vocab_size": self.vocab_size,
            "variant": self.variant,
            "backbone": self.backbone,
            "image_size": self.image_size,
            # Weights travel in the saved file; never re-download or re-read them on load.
            "backbone_weights": None,
            "backbone_trainable": self.backbone_trainable,
            "factor_dim": self.factor_dim,
            "hidden_units": list(self.hidden_units),
            "merge": self.merge,
            "embedding_dim": self.embedding_dim,
            "gru_units": self.gru_units,
            "max_len": self.max_len,
            "kernel_size": self.kernel_size,
            "scale_logits": self.scale_logits,
            "dropout": self.dropout,
            "index_dropout": self.index_dropout,
            "user_index_dropout": self.user_index_dropout,
            "review_dropout": self.review_dropout,
            "profile_weight": self.profile_weight,
            "lambda_z": self.lambda_z,
            "lambda_beta": self.lambda_beta,
            "agnostic_residual": self.agnostic_residual,
            "residual_scale": self.residual_scale,
            "visual_taste": self.visual_taste,
            "agnostic_image_bias": self.agnostic_image_bias,
            "agnostic_target": self.agnostic_target,
            "freeze_embeddings": self.freeze_embeddings,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


