"""MRACNN: multimodal recurrent attention CNN (seed 003 §III) and its ablation variants."""

from __future__ import annotations

import keras
import numpy as np

from tfaesthetic.features import AVA_SCALE, PHOTONET_SCALE, ScoreScale
from tfaesthetic.layers.mfb_pooling import MFBPooling
from tfaesthetic.layers.ngram_bag import POOLINGS as BAG_POOLINGS, NGramBag
from tfaesthetic.layers.recurrent_attention import RecurrentAttention
from tfaesthetic.layers.sentiment_lexicon import SentimentLexicon
from tfaesthetic.layers.text_cnn import EMPTY_TEXT, TextCNN
from tfaesthetic.losses.emd import EMD
from tfaesthetic.losses.mean_score import EMDWithMeanScore
from tfaesthetic.metrics.distribution import distribution_metrics
from tfaesthetic.models.backbones import default_image_size, get_backbone

VARIANTS = ("full", "text_only", "vision_only", "no_attention", "backbone_only")
FUSIONS = ("mfb", "concat", "sum", "product")
#: Language-stream encoders: the paper's Text-CNN, or the Text-CNN beside a learned bag of n-grams.
TEXT_ENCODERS = ("cnn", "cnn_bag")

_USES_IMAGE = ("full", "vision_only", "no_attention", "backbone_only")
_USES_TEXT = ("full", "text_only", "no_attention")
_HAS_ATTENTION = ("full", "vision_only")


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def _rate(name, value):
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="tfaesthetic")
class MRACNN(keras.Model):
    """Multimodal recurrent attention CNN for aesthetic distribution prediction.

    Two streams and a fusion (seed 003 Fig. 2):

    - vision: a backbone (by name, `tfaesthetic.models.backbones`) gives the
      feature map `F = {f_1 … f_L}` (Eq. 2); `RecurrentAttention` takes `T`
      glimpses with an LSTM (Eq. 3–10) and concatenates them, `x = [x_1 … x_T]`;
    - language: `TextCNN` over the comment tokens (Eq. 11, 3/4/5 × 100 maps,
      dropout 0.3);
    - fusion: MFB pooling (Eq. 12–14), or concatenation / element-wise sum /
      element-wise product (the Table III baselines; sum and product first
      project both streams linearly to `fusion_units`);
    - head: dropout, a dense layer and a softmax over the `num_bins` score bins,
      trained with the EMD loss (Eq. 1, r = 2).

    Variants (`variant`), covering the rows of Tables I–III:

    | variant | streams | attention output |
    |---|---|---|
    | `full` | backbone + recurrent attention, Text-CNN, `fusion` (MRACNN) | yes |
    | `text_only` | Text-CNN ("Text-CNN" row of Table III) | no |
    | `vision_only` | backbone + recurrent attention (the paper's vision stream) | yes |
    | `no_attention` | backbone + global average pooling, Text-CNN, `fusion` ("Text-CNN+VGG16") | no |
    | `backbone_only` | backbone + global average pooling ("VGG16" rows of Tables II–III) | no |

    Table I varies `recurrences` (T ∈ {1, 3, 5}) and `lstm_layers` (1, 2, 3).

    Inputs are a dict with only the keys the variant uses: `"image"`
    `[B, S, S, 3]` float32 pixels in [0, 255] (the backbone normalises them) and
    `"tokens"` `[B, max_len]` int32 ids (0 = padding), as yielded by
    `tfaesthetic.data.build_dataset`. Outputs are a dict: `"distribution"`
    `[B, num_bins]` (softmax, float32) and, for `full` and `vision_only`,
    `"attention"` `[B, T, h, w]` (each map sums to 1).

    The backbone is built by name, so `get_config()` holds only the constructor
    arguments and `.keras` files reload without extra code. `backbone_weights`
    is used at construction only and is recorded as `None` in the config: the
    weights travel with the saved model, so a reload neither downloads nor
    needs the original file. Load word vectors with `initialize_embeddings`.

    Args:
        vocab_size: rows of the word-embedding table (the manifest's
            `vocab_size`, padding and OOV included).
        num_bins: score bins of the dataset (10 for AVA, 7 for Photo.net).
        backbone: backbone name: `vgg16`, `inception_v3`, `alexnet`,
            `mobilenet_v3`, `efficientnet` or `tiny`.
        backbone_weights: `None`, `"imagenet"` or a local weights file (see
            `get_backbone`).
        trainable_backbone: fine-tune the backbone (the paper does) or freeze it.
        image_size: image side; defaults to the backbone's size.
        max_len: tokens per example (200 in the paper).
        variant: one of `VARIANTS`, see the table above.
        fusion: one of `FUSIONS` (two-stream variants only).
        recurrences: attention glimpses `T` (3 in the paper).
        lstm_layers: stacked LSTM layers (1 in the paper).
        lstm_units: LSTM hidden size.
        attention_units: hidden size of the attention network (Eq. 8).
        embedding_dim: word-vector size (300-d GloVe in the paper).
        num_filters: Text-CNN feature maps per kernel height (100).
        kernel_sizes: Text-CNN kernel heights ((3, 4, 5)).
        text_dropout: Text-CNN dropout (0.3).
        trainable_embeddings: train the word embeddings (`initialize_embeddings`
            sets this to False, as the paper keeps GloVe fixed).
        mfb_k: MFB factor `k` (Eq. 13–14).
        mfb_o: MFB output size `o` (Eq. 14).
        mfb_dropout: dropout inside MFB pooling.
        fusion_units: common size of the projected streams for `sum` and
            `product` fusion; defaults to `mfb_o`.
        head_dropout: dropout before the softmax head (the paper states none).
        empty_text: Text-CNN output for a comment that is all padding (an image
            without comments): `"learned"`, a trained "no comment" vector, so
            that MFB / product fusion still depends on the image, or `"zeros"`
            (the bare Text-CNN, under which MFB / product fusion of any image with
            no comment is zero and every such image gets the same prediction).
        comment_dropout: training only: the fraction of examples whose text
            features are replaced by the "no comment" vector, so that it learns
            to stand for images without comments (0 = off, needs `"learned"`).
        text_encoder: the language stream: `"cnn"`, the paper's Text-CNN
            (the `text_only` reference), or `"cnn_bag"`, the Text-CNN beside a
            learned bag of words and hashed word pairs (`NGramBag`), their
            features concatenated; for real comments, where a linear bag of
            words is a strong baseline (`mracnn_text_real` preset,
            `benchmarks/real_comments.py`). Both read the same token ids, so
            the serving graph (raw strings in) is unchanged.
        bag_units: `NGramBag` vector size (`"cnn_bag"` only).
        bag_buckets: hash buckets of its word pairs (0: single words only).
        bag_pooling: `"mean"` or `"sqrt"` pooling of the bag.
        bag_dropout: dropout on the bag's output.
        bag_l2: L2 penalty on the bag's tables.
        bag_scale: output factor of the bag (its effective learning rate
            under Adam, `NGramBag(scale=...)`).
        bag_subword_buckets: hash buckets of the words' character 2–5-grams in
            the bag (`NGramBag(subword_buckets=...)`, fastText's subwords; 0 =
            none). Their frozen word → n-gram table is filled by
            `initialize_subwords` (the trainer does, from `vocab.txt`).
        bag_subword_pooling: `"mean"` or `"sqrt"`: a word's n-gram vectors
            divided by their count or its square root
            (`NGramBag(subword_pooling=...)`).
        fine_tune_vectors: keep training word vectors loaded with
            `initialize_embeddings` (the paper freezes them).
        vector_pooling: Text-CNN extra features: masked mean / max / min over
            time of the word vectors (`TextCNN(vector_pooling=...)`).
        sentiment_lexicon: add the 6 prior-polarity features of the comment
            (`SentimentLexicon`: VADER's lexicon with the photo-critique
            overrides, negation, excess and contrast words) to the language
            stream's features, with either encoder. Its frozen table is filled by
            `initialize_lexicon` (the trainer does, from
            `tfaesthetic.records.reviews.lexicon_table`) and saved with the model.
        mean_score_weight: weight `w` of an auxiliary mean-score term in the
            training loss, `EMD + w · (μ̂ − μ)² / mean_score_variance` with
            `μ = Σ_k k q_k` the distribution's mean bin value
            (`tfaesthetic.losses.EMDWithMeanScore`); 0 (default) is the paper's
            plain EMD. Used by `compile(loss="auto")` and the trainer
            (`default_losses`).
        mean_score_variance: the unit `σ²` of that squared error (about the
            variance of the mean scores; 0.5 for AVA).
        **kwargs: `keras.Model` arguments (`name`, `trainable`, `dtype`).

    Call arguments:
        inputs: dict with `"image"` and/or `"tokens"` (see above).
        training: whether dropout is active.

    Reference:
        Zhang et al., "Multimodal recurrent attention CNN for image aesthetic
        prediction", IEEE TMM 2020, §III (Eq. 1–14), §IV-B (defaults),
        Tables I–III (variants).
    """

    def __init__(
        self,
        vocab_size,
        num_bins=10,
        backbone="vgg16",
        backbone_weights=None,
        trainable_backbone=True,
        image_size=None,
        max_len=200,
        variant="full",
        fusion="mfb",
        recurrences=3,
        lstm_layers=1,
        lstm_units=512,
        attention_units=512,
        embedding_dim=300,
        num_filters=100,
        kernel_sizes=(3, 4, 5),
        text_dropout=0.3,
        trainable_embeddings=True,
        mfb_k=5,
        mfb_o=1000,
        mfb_dropout=0.1,
        fusion_units=None,
        head_dropout=0.0,
        empty_text="learned",
        comment_dropout=0.0,
        text_encoder="cnn",
        bag_units=16,
        bag_buckets=0,
        bag_pooling="mean",
        bag_dropout=0.0,
        bag_l2=0.0,
        bag_scale=1.0,
        bag_subword_buckets=0,
        bag_subword_pooling="mean",
        fine_tune_vectors=False,
        vector_pooling=(),
        sentiment_lexicon=False,
        mean_score_weight=0.0,
        mean_score_variance=0.5,
        **kwargs,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"`variant` must be one of {VARIANTS}. Received: variant={variant!r}")
        if fusion not in FUSIONS:
            raise ValueError(f"`fusion` must be one of {FUSIONS}. Received: fusion={fusion!r}")
        if empty_text not in EMPTY_TEXT:
            raise ValueError(f"`empty_text` must be one of {EMPTY_TEXT}. Received: empty_text={empty_text!r}")
        comment_dropout = _rate("comment_dropout", comment_dropout)
        if text_encoder not in TEXT_ENCODERS:
            raise ValueError(f"`text_encoder` must be one of {TEXT_ENCODERS}. Received: text_encoder={text_encoder!r}")
        if bag_pooling not in BAG_POOLINGS:
            raise ValueError(f"`bag_pooling` must be one of {BAG_POOLINGS}. Received: bag_pooling={bag_pooling!r}")
        if bag_subword_pooling not in BAG_POOLINGS:
            raise ValueError(
                f"`bag_subword_pooling` must be one of {BAG_POOLINGS}. "
                f"Received: bag_subword_pooling={bag_subword_pooling!r}"
            )
        num_bins = _positive_int("num_bins", num_bins)
        if not float(mean_score_weight) >= 0.0:
            raise ValueError(f"`mean_score_weight` must be >= 0. Received: mean_score_weight={mean_score_weight!r}")
        if not float(mean_score_variance) > 0.0:
            raise ValueError(
                f"`mean_score_variance` must be > 0. Received: mean_score_variance={mean_score_variance!r}"
            )
        if num_bins < 2:
            raise ValueError(f"`num_bins` must be >= 2. Received: num_bins={num_bins}")
        uses_image, uses_text = variant in _USES_IMAGE, variant in _USES_TEXT
        has_attention = variant in _HAS_ATTENTION
        size = default_image_size(backbone) if image_size is None else _positive_int("image_size", image_size)
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        name = kwargs.pop("name", "mracnn")

        # === Layers ===
        self.backbone_model = None
        self.attention_layer = None
        self.pooling = None
        self.text_cnn = None
        self.ngram_bag = None
        self.sentiment_lexicon_layer = None
        self.text_concat = None
        self.fusion_layer = None
        self.projections = None
        if uses_image:
            self.backbone_model = get_backbone(
                backbone, image_size=size, weights=backbone_weights, trainable=trainable_backbone
            )
            if has_attention:
                self.attention_layer = RecurrentAttention(
                    units=_positive_int("lstm_units", lstm_units),
                    recurrences=_positive_int("recurrences", recurrences),
                    num_layers=_positive_int("lstm_layers", lstm_layers),
                    attention_units=_positive_int("attention_units", attention_units),
                    name="recurrent_attention",
                )
            else:
                self.pooling = keras.layers.GlobalAveragePooling2D(name="global_pooling")
        if uses_text:
            self.text_cnn = TextCNN(
                vocab_size=_positive_int("vocab_size", vocab_size),
                embedding_dim=_positive_int("embedding_dim", embedding_dim),
                num_filters=_positive_int("num_filters", num_filters),
                kernel_sizes=kernel_sizes,
                dropout=_rate("text_dropout", text_dropout),
                trainable_embeddings=trainable_embeddings,
                empty_text=empty_text,
                comment_dropout=comment_dropout,
                vector_pooling=tuple(vector_pooling),
                name="text_cnn",
            )
            if text_encoder == "cnn_bag":
                self.ngram_bag = NGramBag(
                    vocab_size=int(vocab_size),
                    units=_positive_int("bag_units", bag_units),
                    num_buckets=int(bag_buckets),
                    pooling=bag_pooling,
                    dropout=_rate("bag_dropout", bag_dropout),
                    l2=float(bag_l2),
                    scale=float(bag_scale),
                    subword_buckets=int(bag_subword_buckets),
                    subword_pooling=bag_subword_pooling,
                    name="ngram_bag",
                )
            if sentiment_lexicon:
                self.sentiment_lexicon_layer = SentimentLexicon(vocab_size=int(vocab_size), name="sentiment_lexicon")
            if self.ngram_bag is not None or self.sentiment_lexicon_layer is not None:
                self.text_concat = keras.layers.Concatenate(name="text_features")
        if uses_image and uses_text:
            if fusion == "mfb":
                self.fusion_layer = MFBPooling(
                    output_dim=_positive_int("mfb_o", mfb_o),
                    factor_k=_positive_int("mfb_k", mfb_k),
                    dropout=_rate("mfb_dropout", mfb_dropout),
                    name="mfb_pooling",
                )
            elif fusion == "concat":
                self.fusion_layer = keras.layers.Concatenate(name="concat_fusion")
            else:
                units = _positive_int("fusion_units", mfb_o if fusion_units is None else fusion_units)
                self.projections = [
                    keras.layers.Dense(units, name="vision_projection"),
                    keras.layers.Dense(units, name="text_projection"),
                ]
                merge = keras.layers.Add if fusion == "sum" else keras.layers.Multiply
                self.fusion_layer = merge(name=f"{fusion}_fusion")
        self.head_dropout_layer = keras.layers.Dropout(_rate("head_dropout", head_dropout), name="head_dropout")
        self.head = keras.layers.Dense(num_bins, name="head")
        # Softmax and attention maps in float32, also under mixed precision.
        self.softmax = keras.layers.Activation("softmax", dtype="float32", name="distribution")
        self.attention_output = keras.layers.Activation("linear", dtype="float32", name="attention") if has_attention else None

        # === Functional graph ===
        inputs = {}
        vision = text = attention = None
        if uses_image:
            inputs["image"] = keras.Input(shape=(size, size, 3), dtype="float32", name="image")
            feature_map = self.backbone_model(inputs["image"])
            if has_attention:
                vision, attention = self.attention_layer(feature_map)
            else:
                vision = self.pooling(feature_map)
        if uses_text:
            inputs["tokens"] = keras.Input(shape=(_positive_int("max_len", max_len),), dtype="int32", name="tokens")
            parts = [self.text_cnn(inputs["tokens"])]
            if self.ngram_bag is not None:
                parts.append(self.ngram_bag(inputs["tokens"]))
            if self.sentiment_lexicon_layer is not None:
                parts.append(self.sentiment_lexicon_layer(inputs["tokens"]))
            text = self.text_concat(parts) if len(parts) > 1 else parts[0]
        if vision is not None and text is not None:
            if fusion == "mfb":
                joint = self.fusion_layer(vision, text)
            elif fusion == "concat":
                joint = self.fusion_layer([vision, text])
            else:
                joint = self.fusion_layer([self.projections[0](vision), self.projections[1](text)])
        else:
            joint = vision if vision is not None else text
        logits = self.head(self.head_dropout_layer(joint))
        outputs = {"distribution": self.softmax(logits)}
        if has_attention:
            outputs["attention"] = self.attention_output(attention)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        # === Config ===
        self.vocab_size = vocab_size
        self.num_bins = num_bins
        self.backbone = backbone
        self.backbone_weights = backbone_weights
        self.trainable_backbone = bool(trainable_backbone)
        self.image_size = image_size
        self.max_len = max_len
        self.variant = variant
        self.fusion = fusion
        self.recurrences = recurrences
        self.lstm_layers = lstm_layers
        self.lstm_units = lstm_units
        self.attention_units = attention_units
        self.embedding_dim = embedding_dim
        self.num_filters = num_filters
        self.kernel_sizes = kernel_sizes
        self.text_dropout = text_dropout
        self.trainable_embeddings = bool(trainable_embeddings)
        self.mfb_k = mfb_k
        self.mfb_o = mfb_o
        self.mfb_dropout = mfb_dropout
        self.fusion_units = fusion_units
        self.head_dropout = head_dropout
        self.empty_text = empty_text
        self.comment_dropout = comment_dropout
        self.text_encoder = text_encoder
        self.bag_units = bag_units
        self.bag_buckets = bag_buckets
        self.bag_pooling = bag_pooling
        self.bag_dropout = bag_dropout
        self.bag_l2 = bag_l2
        self.bag_scale = bag_scale
        self.bag_subword_buckets = bag_subword_buckets
        self.bag_subword_pooling = bag_subword_pooling
        self.fine_tune_vectors = bool(fine_tune_vectors)
        self.vector_pooling = tuple(vector_pooling)
        self.sentiment_lexicon = bool(sentiment_lexicon)
        self.mean_score_weight = float(mean_score_weight)
        self.mean_score_variance = float(mean_score_variance)

    @property
    def input_keys(self):
        """The input dict keys this variant reads (`"image"`, `"tokens"`)."""
        return tuple(k for k in ("image", "tokens") if k in self.input)

    @property
    def has_attention(self):
        """Whether the model outputs attention maps."""
        return self.variant in _HAS_ATTENTION

    def call(self, inputs, training=None, mask=None):
        # Pick the variant's inputs by key: the pipeline may yield both "image"
        # and "tokens", and a one-input functional graph would otherwise take
        # the first tensor of the dict whatever its key.
        if isinstance(inputs, dict):
            missing = [key for key in self.input_keys if key not in inputs]
            if missing:
                raise ValueError(
                    f"MRACNN variant {self.variant!r} needs inputs {list(self.input_keys)}. "
                    f"Received: inputs with keys {sorted(inputs)}"
                )
            inputs = {key: inputs[key] for key in self.input_keys}
        return super().call(inputs, training=training, mask=mask)

    def initialize_embeddings(self, matrix, trainable=False):
        """Loads word vectors (e.g. GloVe) into the Text-CNN embedding table.

        Args:
            matrix: `[vocab_size, embedding_dim]` array, e.g. from
                `tfaesthetic.layers.load_vectors(path, vocabulary_words)`.
            trainable: keep training the vectors; the paper freezes them
                (seed 003 §IV-B1), which is the default. Recompile afterwards.
        """
        if self.text_cnn is None:
            raise ValueError(f"The {self.variant!r} variant has no text stream. Received: variant={self.variant!r}")
        trainable = bool(trainable) or self.fine_tune_vectors
        self.text_cnn.set_embeddings(matrix, trainable=trainable)
        self.trainable_embeddings = trainable

    def initialize_subwords(self, vocabulary_words):
        """Fills the bag's word → character n-gram table (`NGramBag.set_subwords`).

        Args:
            vocabulary_words: the records' vocabulary in id order (`vocab.txt`).
        """
        if self.ngram_bag is None or not self.ngram_bag.subword_buckets:
            raise ValueError(
                "This MRACNN has no subwords (build it with text_encoder='cnn_bag' and bag_subword_buckets > 0). "
                f"Received: text_encoder={self.text_encoder!r}, bag_subword_buckets={self.bag_subword_buckets}"
            )
        self.ngram_bag.set_subwords(vocabulary_words)

    def initialize_lexicon(self, table):
        """Loads the `SentimentLexicon` table (`tfaesthetic.records.reviews.lexicon_table`).

        Args:
            table: `[vocab_size, 4]` array, one row per token id.
        """
        if self.sentiment_lexicon_layer is None:
            raise ValueError(
                "This MRACNN has no sentiment lexicon (build it with sentiment_lexicon=True and a text stream). "
                f"Received: variant={self.variant!r}, sentiment_lexicon={self.sentiment_lexicon}"
            )
        self.sentiment_lexicon_layer.set_table(table)

    def compile(self, optimizer="auto", loss="auto", metrics="auto", *, scale=None, learning_rate=1e-3, **kwargs):
        """Compiles with the paper's defaults unless told otherwise.

        Args:
            optimizer: `"auto"` = Adam(learning_rate, β1 0.9, β2 0.99)
                (seed 003 §IV-B1), or any Keras optimizer.
            loss: `"auto"` = `default_losses()`: `{"distribution": EMD(r=2)}`, or
                EMD with the mean-score term when `mean_score_weight > 0`.
            metrics: `"auto"` = the six metrics of §IV-A on the distribution
                (`tfaesthetic.metrics.distribution_metrics(scale)`).
            scale: the dataset's `ScoreScale` (or manifest JSON) for the metrics;
                default AVA's for 10 bins, Photo.net's for 7, else bins valued
                1..N with the threshold in the middle.
            learning_rate: base learning rate of the `"auto"` optimizer.
            **kwargs: other `keras.Model.compile` arguments (`jit_compile`, ...).
        """
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.9, beta_2=0.99)
        if loss == "auto":
            loss = self.default_losses()
        if metrics == "auto":
            metrics = {"distribution": distribution_metrics(self.default_scale() if scale is None else scale)}
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def default_losses(self):
        """`{"distribution": loss}`: EMD (r = 2, Eq. 1), plus the mean-score term when `mean_score_weight > 0`."""
        if self.mean_score_weight > 0:
            return {
                "distribution": EMDWithMeanScore(
                    r=2, mean_weight=self.mean_score_weight, variance=self.mean_score_variance
                )
            }
        return {"distribution": EMD(r=2)}

    def compile_from_config(self, config):
        """Recompiles a loaded model with its saved optimizer, loss and metrics.

        `compile` is customised (paper defaults), so Keras would otherwise skip
        compiling on load; the saved config holds concrete objects, never "auto".
        """
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # Labels hold only "distribution" (the pipeline's contract); Keras'
        # compiled metrics look every output up in `y`, so the attention maps,
        # which have no target, are passed through as their own "target".
        if isinstance(y, dict) and isinstance(y_pred, dict) and any(k not in y for k in y_pred):
            y = {**{k: v for k, v in y_pred.items() if k not in y}, **y}
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def default_scale(self) -> ScoreScale:
        """The score scale assumed when none is given (see `compile`)."""
        for scale in (AVA_SCALE, PHOTONET_SCALE):
            if scale.num_bins == self.num_bins:
                return scale
        values = tuple(float(v) for v in range(1, self.num_bins + 1))
        return ScoreScale(values=values, threshold=(1 + self.num_bins) / 2)

    def get_config(self):
        # Not the functional config: the constructor arguments rebuild the graph.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vocab_size": self.vocab_size,
            "num_bins": self.num_bins,
            "backbone": self.backbone,
            "backbone_weights": None,
            "trainable_backbone": self.trainable_backbone,
            "image_size": self.image_size,
            "max_len": self.max_len,
            "variant": self.variant,
            "fusion": self.fusion,
            "recurrences": self.recurrences,
            "lstm_layers": self.lstm_layers,
            "lstm_units": self.lstm_units,
            "attention_units": self.attention_units,
            "embedding_dim": self.embedding_dim,
            "num_filters": self.num_filters,
            "kernel_sizes": list(self.kernel_sizes),
            "text_dropout": self.text_dropout,
            "trainable_embeddings": self.trainable_embeddings,
            "mfb_k": self.mfb_k,
            "mfb_o": self.mfb_o,
            "mfb_dropout": self.mfb_dropout,
            "fusion_units": self.fusion_units,
            "head_dropout": self.head_dropout,
            "empty_text": self.empty_text,
            "comment_dropout": self.comment_dropout,
            "text_encoder": self.text_encoder,
            "bag_units": self.bag_units,
            "bag_buckets": self.bag_buckets,
            "bag_pooling": self.bag_pooling,
            "bag_dropout": self.bag_dropout,
            "bag_l2": self.bag_l2,
            "bag_scale": self.bag_scale,
            "bag_subword_buckets": self.bag_subword_buckets,
            "bag_subword_pooling": self.bag_subword_pooling,
            "fine_tune_vectors": self.fine_tune_vectors,
            "vector_pooling": list(self.vector_pooling),
            "sentiment_lexicon": self.sentiment_lexicon,
            "mean_score_weight": self.mean_score_weight,
            "mean_score_variance": self.mean_score_variance,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def initialize_embeddings(model, matrix, trainable=False):
    """Loads word vectors into `model`'s Text-CNN and freezes them (by default).

    Args:
        model: an `MRACNN` with a text stream.
        matrix: `[vocab_size, embedding_dim]` word vectors.
        trainable: keep training them (the paper does not).

    Returns:
        `model`.
    """
    if not isinstance(model, MRACNN):
        raise TypeError(f"Expected an MRACNN model. Received: {type(model).__name__}")
    model.initialize_embeddings(matrix, trainable=trainable)
    return model
