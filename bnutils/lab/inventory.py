"""The concept inventory: multiple-choice questions on BN, taken before notebook 01 and after 09.

Each question tests one idea the course teaches, and its wrong choices are the mistakes that
common study notes and blog posts on BN make (internal covariate shift as the reason BN works,
ε outside the square root, batch statistics at inference, "BN solves vanishing gradients", ...).
Every answer is backed by a cell of the course that shows it: ``Question.cell`` names the
notebook and the cell id, and ``Question.evidence`` the text that cell prints
(``tests/test_inventory.py`` checks both against the stored notebooks).

The two forms, ``"before"`` and ``"after"``, are the same questions in different orders, each
with its choices in a different order too (``form``): a fixed, seeded order, the same on
every machine. The answer key stays here, in the library, like the self-checks' references;
the quiz widget only ever shows the choices.

Introduced in notebook 00.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["CONCEPTS", "FORMS", "QUESTIONS", "FormQuestion", "Question", "form", "letter", "score"]

#: The concepts the per-concept result groups the questions by, in the order it lists them.
CONCEPTS = (
    "why BN works",
    "the forward pass",
    "where BN goes",
    "gradients and learning rates",
    "training vs inference",
    "small batches and the alternatives",
)

#: The two forms of the inventory: the same questions, shuffled differently.
FORMS = ("before", "after")


@dataclass(frozen=True)
class Question:
    """One multiple-choice question.

    Attributes
    ----------
    id : str
        Stable short name (the saved answers use it, so that the two forms can be compared).
    concept : str
        One of ``CONCEPTS``.
    text : str
        The question.
    choices : tuple of str
        The choices; ``choices[answer]`` is the right one, the others are common mistakes.
    answer : int
        Index of the right choice.
    explanation : str
        Why the right choice is right, in a sentence or two.
    notebook, section : str
        The notebook (file name) and the heading of the section that teaches it.
    cell : str
        The id of the code cell whose output backs the answer.
    evidence : tuple of str
        Text that cell's stored output contains, on which the answer rests.

    Introduced in notebook 00.
    """

    id: str
    concept: str
    text: str
    choices: tuple
    answer: int
    explanation: str
    notebook: str
    section: str
    cell: str
    evidence: tuple

    @property
    def link(self) -> str:
        """The section's address, relative to the notebooks' folder (JupyterLab's anchors)."""
        return f"{self.notebook}#{self.section.lstrip('# ').replace(' ', '-')}"


NB01, NB03, NB04 = "01_feature_scaling.ipynb", "03_batchnorm_forward.ipynb", "04_batchnorm_backward.ipynb"
NB05, NB06, NB07 = ("05_training_with_batchnorm.ipynb", "06_batchnorm_at_inference.ipynb",
                    "07_why_bn_works.ipynb")
NB08, NB09 = "08_convolutional_and_residual.ipynb", "09_limits_and_alternatives.ipynb"

QUESTIONS = (
    Question(
        "ics", "why BN works",
        "The BN paper's title says BN accelerates training by reducing internal covariate shift "
        "(each layer's inputs changing their distribution as earlier layers learn). What does "
        "the course's experiment show?",
        ("BN works because it removes internal covariate shift: each layer's inputs keep one "
         "fixed distribution during training.",
         "A BN network with noise added after each BN layer, which makes the layers' input "
         "distributions move several times more than without it, trains nearly as well as "
         "plain BN: reducing the shift is not what makes BN work.",
         "Without BN a network cannot learn at all, because of internal covariate shift.",
         "BN works because it reduces the number of parameters the optimizer has to fit."),
        1,
        "Noisy BN puts the covariate shift back (its unit's input moves about five times as far "
        "per step) and still trains to nearly plain BN's accuracy (Santurkar et al. 2018 found "
        "the same at scale).",
        NB07, "### 2.1 Noisy BN: BN with the covariate shift put back", "46b30929",
        ("noisy BN minus BN, per seed", "noisy BN / BN, each step's batch")),
    Question(
        "whitening", "why BN works",
        "BN standardizes each feature to mean 0 and variance 1. Two inputs are strongly "
        "correlated. What does standardizing them do to gradient descent's problem?",
        ("It removes the correlation too, so the loss surface becomes perfectly round.",
         "Nothing at all: only the correlation matters, never the scales.",
         "It fixes the scales but keeps the correlation, so the loss surface can stay "
         "elongated; only whitening (decorrelating) makes it round, and BN does not whiten.",
         "It makes the features independent, as BN does inside a network."),
        2,
        "Standardized correlated features still have a condition number far above 1; whitened "
        "ones have 1 and converge in one step. BN leaves the correlation alone (whitening a "
        "layer costs too much and its covariance estimate from one batch is poor).",
        NB01, "## 5. Whitening, and why BN does not do it", "efc29d55",
        ("whitened: kappa   1.0   converged in 1 step",)),
    Question(
        "eps", "the forward pass",
        "Where does ε go in BN's normalization?",
        ("Inside the square root: (x − μ) / √(σ² + ε).",
         "Outside it: (x − μ) / (σ + ε); both are the same in practice.",
         "It is added to the output, after γ and β, to keep it away from zero.",
         "It is added to the mean: (x − μ − ε) / σ."),
        0,
        "ε goes under the root. For a nearly constant feature the two versions differ by far: "
        "σ + ε blows rounding noise up to nearly unit size, √(σ² + ε) keeps it small.",
        NB03, "## 3. ε: why, and where", "bn-forward-18",
        ("std after BN, sqrt(sigma^2 + eps): 0.029", "std after BN, sigma + eps:         0.901")),
    Question(
        "constant", "the forward pass",
        "One feature has the same value for every sample in the batch. What does BN's "
        "normalized value x̂ of that feature come out as?",
        ("NaN, because its variance is zero; ε is too small to matter.",
         "0 for every sample, thanks to ε (so the output is β).",
         "1 for every sample: BN always gives unit variance.",
         "The input, unchanged: BN skips constant features."),
        1,
        "Without ε it is 0/0 = NaN; with ε it is 0/√ε = 0, so the layer outputs β.",
        NB03, "## 3. ε: why, and where", "bn-forward-14",
        ("without eps: [nan nan nan nan]", "with eps:    [0. 0. 0. 0.]")),
    Question(
        "biased", "the forward pass",
        "In training mode, which variance does BN normalize a batch of m values with?",
        ("The unbiased one (divide by m − 1), because it is the better estimate.",
         "The running variance from earlier batches.",
         "The biased one (divide by m), so that x̂ has variance exactly 1 on the batch.",
         "The variance of the whole training set, computed once before training."),
        2,
        "BN divides by m: then x̂ has standard deviation 1 on its batch; with m − 1 it would be "
        "√((m − 1)/m). (The running variance stores the unbiased estimate; another question.)",
        NB03, "## 4. Biased, not unbiased, variance", "bn-forward-20",
        ("std of x_hat, ddof=0 (BN): [1. 1.]", "std of x_hat, ddof=1:      [0.866 0.866]")),
    Question(
        "identity", "the forward pass",
        "Can a BN layer pass its input through unchanged?",
        ("No: its output always has mean 0 and variance 1.",
         "Only in eval mode.",
         "Only with ε = 0.",
         "Yes: with γ = √(σ² + ε) and β = μ for each feature it gives back its input."),
        3,
        "γ and β are learned per feature, so the network can undo the normalization where "
        "that helps.",
        NB03, "### 6.1 They can undo the normalization", "bn-forward-24",
        ("BN(X) == X: True",)),
    Question(
        "per_feature", "the forward pass",
        "A BN layer on 3 features. What does it hold?",
        ("One γ and one β for the whole layer, both learned.",
         "γ, β, a running mean and a running variance per feature: γ and β learned by "
         "gradient descent, the running statistics computed from the batches.",
         "γ, β, mean and variance per feature, all four learned by gradient descent.",
         "Nothing per feature: BN has no parameters."),
        1,
        "Each feature has its own γ and β (learned) and its own running mean and variance "
        "(not learned: averaged over the batches seen in training).",
        NB03, "## 5. Per feature: two numbers learned, two computed", "bn-forward-22",
        ("learned:      ['beta', 'gamma']", "not learned:  running_mean")),
    Question(
        "spatial", "the forward pass",
        "BN after a convolution, on images of shape (N, C, H, W): over which values is each "
        "mean computed?",
        ("Over the N images, separately for every pixel of every channel.",
         "Over all C·H·W values of each image.",
         "Over the N·H·W values of each channel: one mean, variance, γ and β per channel.",
         "Over the C channels at each pixel."),
        2,
        "Spatial BN shares statistics over the batch and all positions of a channel; it equals "
        "ordinary BN on the (N·H·W, C) table.",
        NB03, "## 9. Spatial BN for images", "bn-forward-35",
        ("values per channel m = N*H*W = 128", "equal to 2-D BN on the (N*H*W, C) table: True")),
    Question(
        "bias", "where BN goes",
        "A Linear layer with a bias feeds straight into BN. What happens to that bias?",
        ("It is redundant: BN subtracts the batch mean, which removes it, and its gradient is "
         "zero; β does its job.",
         "It is essential: without it BN cannot shift its output.",
         "It doubles β's effect, so training is faster.",
         "It makes the output depend on the batch size."),
        0,
        "Any constant added before BN is subtracted again with the mean: the output does not "
        "change and the bias's gradient is exactly zero.",
        NB03, "## 7. The bias right before BN is redundant", "bn-forward-30",
        ("gradient of the bias before BN: [0. 0. 0.]",)),
    Question(
        "placement", "where BN goes",
        "BN before or after the activation (ReLU)?",
        ("Only after the activation works; before it, ReLU kills half the values and "
         "training fails.",
         "Only before works; after it, BN cannot normalize ReLU's non-negative outputs.",
         "It must go after the output layer.",
         "Both train: the paper put BN before the activation, and in the course's experiment "
         "the two placements reached similar accuracy."),
        3,
        "The original paper normalizes the activation's input; many networks put BN after it. "
        "Notebook 05 trains both and their accuracies overlap over the runs.",
        NB05, "## 6. BN before or after the activation, and the bias before BN", "870652c8",
        ("BN before ReLU, no bias", "BN after ReLU (with bias)")),
    Question(
        "sum_zero", "gradients and learning rates",
        "For one feature, what is the sum over the batch of BN's input gradient ∂L/∂xᵢ?",
        ("It equals the sum of ∂L/∂yᵢ, as for any elementwise layer.",
         "Zero: shifting every input of the feature by the same amount does not change BN's "
         "output.",
         "γ times the batch size.",
         "It depends on the learning rate."),
        1,
        "BN's output is unchanged by a common shift of its inputs, so the gradient has no "
        "component along (1, …, 1): it sums to zero (and is orthogonal to x̂, up to an ε term).",
        NB04, "### 5.1 It sums to zero, and is orthogonal to $\\hat{x}$", "bn-backward-18",
        ("sum_i dx_i          per feature: [0. 0. 0. 0.]",)),
    Question(
        "scale_invariance", "gradients and learning rates",
        "The weights W of a layer feed BN. You multiply W by 10. What happens?",
        ("The output grows tenfold, and so does the gradient.",
         "The output is unchanged and the gradient grows tenfold.",
         "The output is unchanged and the gradient with respect to W shrinks tenfold.",
         "Training diverges."),
        2,
        "BN(aWx) = BN(Wx), so the loss does not depend on the scale of W, and its gradient "
        "scales as 1/a: larger weights take smaller steps.",
        NB04, "### 5.3 Scale invariance: BN does not care how large the weights are", "bn-backward-25",
        ("|dW(aW)| / |dW(W)|", "0.1000")),
    Question(
        "vanishing", "gradients and learning rates",
        "\"BN solves vanishing and exploding gradients.\" In a deep plain ReLU network at "
        "initialization, what does BN do to the gradients?",
        ("It keeps the gradient of every layer the same size.",
         "It makes them grow layer after layer towards the input (they explode at "
         "initialization; a few training steps undo most of it).",
         "It makes them vanish towards the input.",
         "Nothing: BN acts only on the forward pass."),
        1,
        "With BN each layer back multiplies the gradient by about the same factor above 1, as "
        "Yang et al. 2019 derived; BN does cure the sigmoid's vanishing gradient, but it does "
        "not make gradients well-behaved in general.",
        NB08, "## 3. Deep plain networks at initialization", "52d7d793",
        ("ReLU + BN, layer 1 / layer 29 over 3 initializations", "after 5 SGD steps")),
    Question(
        "learning_rate", "gradients and learning rates",
        "Does BN let a network train at larger learning rates?",
        ("Yes: in notebook 05 the largest learning rate at which the BN network still trained "
         "was several times the plain network's.",
         "No: BN needs smaller learning rates, because its statistics are noisy.",
         "Only if the learning rate is also decayed by the batch size.",
         "No: the learning rate has nothing to do with normalization."),
        0,
        "Scale invariance lets large steps grow the weights and so shrink their own effective "
        "size; the sweep finds a largest stable rate several times higher with BN.",
        NB05, "### Exercise 5.2 — the largest stable learning rate", "0da6d263",
        ("no BN    largest stable learning rate in [1.0, 2.0, 4.0, 8.0, 16.0]: 1.0",
         "with BN  largest stable learning rate in [1.0, 2.0, 4.0, 8.0, 16.0]: 8.0")),
    Question(
        "weight_decay", "gradients and learning rates",
        "What does weight decay do to the weights of a layer that is followed by BN?",
        ("It makes the function smoother, exactly as in a network without BN.",
         "Nothing: BN undoes it.",
         "It makes the network's outputs smaller.",
         "It shrinks ‖W‖, which does not change the function but raises the effective "
         "learning rate η/‖W‖²."),
        3,
        "The layer's output does not depend on ‖W‖, so weight decay controls how fast the "
        "layer learns rather than what it computes (van Laarhoven 2017).",
        NB07, "### 3.2 Weight decay under BN", "6a0bdcae",
        ("its η/‖W‖²",)),
    Question(
        "eval_stats", "training vs inference",
        "A trained network predicts in eval mode. Which statistics does BN normalize with?",
        ("The statistics of the batch being predicted, as in training.",
         "The running mean and variance averaged during training.",
         "Mean 0 and variance 1, always.",
         "The statistics of the whole test set, computed first."),
        1,
        "In eval mode BN uses its running averages: a sample's prediction no longer depends on "
        "the other samples, and a batch of one works.",
        NB06, "## 1. Two sets of statistics", "12f0cfda",
        ("running_mean: [1.]", "eval mode, input 10 ->")),
    Question(
        "batch_mates", "training vs inference",
        "You forget to switch to eval mode and predict one test image in batches of different "
        "images. What happens?",
        ("Nothing: BN gives the same output in both modes once trained.",
         "It raises an error.",
         "The image's prediction depends on the other images in its batch.",
         "Predictions are the same, only slower."),
        2,
        "In training mode BN normalizes with the batch's statistics, so the same image gets "
        "different labels with different batch-mates; in eval mode it always gets one.",
        NB06, "## 4. Train mode vs eval mode: the classic bugs", "dafb90ac",
        ("predicted label, training mode", "predicted label, eval mode       1  1  1  1  1  1  1  1  1  1")),
    Question(
        "running_var", "training vs inference",
        "Which variance does PyTorch's BN put into its running variance?",
        ("The unbiased batch variance (divided by m − 1), which is m/(m − 1) times the one it "
         "normalized with.",
         "The biased batch variance (divided by m), the same it normalized with.",
         "The variance of γ.",
         "None: the running variance is learned by gradient descent."),
        0,
        "Normalize with the biased variance, store the unbiased one: the average of many "
        "biased batch variances falls short of the true variance by (m − 1)/m.",
        NB06, "## 3. The variance in the running estimate", "4064dd2f",
        ("unbiased / biased = m/(m-1)",)),
    Question(
        "momentum", "training vs inference",
        "PyTorch's BatchNorm has momentum 0.1 by default, Keras's 0.99. Which is true?",
        ("They mean the same: both weight the new batch by the momentum.",
         "They are opposite conventions: PyTorch's 0.1 weights the new batch by 0.1, which is "
         "Keras's 0.9; Keras's default 0.99 is PyTorch's 0.01, a much slower average.",
         "Keras's 0.99 weights the new batch by 0.99.",
         "Momentum here is SGD's heavy-ball momentum."),
        1,
        "PyTorch: new = (1 − m)·old + m·batch; Keras: new = m·old + (1 − m)·batch.",
        NB06, "## 2. The momentum convention: PyTorch vs Keras", "751a3c7b",
        ("PyTorch's default momentum 0.1 = Keras momentum 0.9",)),
    Question(
        "fine_tuning", "training vs inference",
        "You fine-tune a pretrained PyTorch network with its BN layers' weights frozen "
        "(requires_grad=False) and the model in train() mode. What happens to BN's running "
        "statistics?",
        ("Nothing: freezing the weights freezes the statistics too.",
         "They are reset to mean 0 and variance 1.",
         "They become learnable.",
         "They keep being updated from the new batches: frozen weights are not frozen "
         "statistics (keep BN in eval mode, or use a frozen BN layer)."),
        3,
        "Running statistics are not parameters; train() mode updates them on every batch, so "
        "small fine-tuning batches drag them away and cost accuracy.",
        NB09, "## 5. Fine-tuning: frozen weights are not frozen statistics", "81dbc7df",
        ("BN in training mode (the bug)", "FrozenBatchNorm (the fix)")),
    Question(
        "small_batch", "small batches and the alternatives",
        "You can only fit batches of 2 samples. What does the course's batch-size sweep show?",
        ("BN works equally well at every batch size.",
         "BN's accuracy drops far below that of LayerNorm and GroupNorm, whose statistics do "
         "not depend on the batch.",
         "Every normalization fails equally at batch size 2.",
         "Small batches help BN, because they add noise."),
        1,
        "With two samples per batch each normalized value is about ±1 whatever the input, and "
        "BN's gradients become erratic; LayerNorm and GroupNorm normalize within a sample.",
        NB09, "### 1.2 A batch-size sweep, after Wu & He's Figure 1", "55b33d1d",
        ("batch_size  no normalization   BatchNorm          LayerNorm          GroupNorm",)),
    Question(
        "non_iid", "small batches and the alternatives",
        "Training batches are sorted by class (each batch holds one or two classes). What does "
        "that do to a BN network predicting in training mode?",
        ("Nothing: BN only needs enough samples per batch.",
         "It helps, because each batch is more uniform.",
         "Accuracy collapses: BN's statistics then depend on which classes the batch holds.",
         "It makes BN behave like LayerNorm."),
        2,
        "BN assumes the samples of a batch are drawn independently from the same distribution; "
        "sorted batches break that (Batch Renormalization is one remedy).",
        NB09, "## 2. Batches that are not i.i.d.", "7a70e488",
        ("training mode, batches sorted by class",)),
    Question(
        "single_sample", "small batches and the alternatives",
        "For sequences and single samples (batch size 1 at training time), which normalization "
        "fits, and why?",
        ("BN, with a smaller ε.",
         "LayerNorm: it normalizes over each sample's own features, so it needs no batch and "
         "computes the same at training and at test time.",
         "BN in eval mode during training.",
         "None: a single sample cannot be normalized."),
        1,
        "BN in training mode refuses a batch of one (there is no spread over one value); "
        "LayerNorm, the Transformers' choice, normalizes within the sample.",
        NB09, "## 7. Sequences, single samples and Transformers", "906255b2",
        ("BN: training-mode batch norm needs at least 2 values per feature", "LayerNorm: [[")),
)


def letter(index: int) -> str:
    """The letter of a choice: 0 -> ``"a"``. Introduced in notebook 00."""
    return "abcdefgh"[index]


@dataclass(frozen=True)
class FormQuestion:
    """A question as one form shows it: its number there and its choices' order.

    ``order[k]`` is the index in ``question.choices`` of the choice shown as letter k.

    Introduced in notebook 00.
    """

    number: int
    question: Question
    order: tuple

    @property
    def choices(self) -> tuple:
        """The choices in the order this form shows them."""
        return tuple(self.question.choices[i] for i in self.order)

    @property
    def answer_letter(self) -> str:
        """The letter of the right choice in this form."""
        return letter(self.order.index(self.question.answer))


def _key(*parts) -> str:
    """A fixed pseudo-random sort key (SHA-256: the same on every machine and version)."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def form(name: str) -> tuple:
    """The questions of one form, numbered from 1, questions and choices in its own order.

    Parameters
    ----------
    name : {"before", "after"}

    Returns
    -------
    tuple of FormQuestion

    Examples
    --------
    >>> before, after = form("before"), form("after")
    >>> sorted(q.question.id for q in before) == sorted(q.question.id for q in after)
    True
    >>> [q.question.id for q in before] != [q.question.id for q in after]
    True

    Introduced in notebook 00.
    """
    if name not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {name!r}")
    questions = sorted(QUESTIONS, key=lambda q: _key(name, q.id))
    return tuple(FormQuestion(number, q, tuple(sorted(range(len(q.choices)),
                                                      key=lambda i, q=q: _key(name, q.id, i))))
                 for number, q in enumerate(questions, start=1))


def score(name: str, choices: dict) -> dict:
    """Score answers given as ``{question id: index into Question.choices}``.

    Parameters
    ----------
    name : {"before", "after"}
        The form (only checked: the ids and indices do not depend on it).
    choices : dict
        The chosen choice per question id; a question left out is unanswered.

    Returns
    -------
    dict
        ``"right"``: the ids answered right; ``"answered"``: the ids answered;
        ``"concepts"``: ``{concept: (right, questions)}`` in ``CONCEPTS`` order.

    Examples
    --------
    >>> result = score("before", {"eps": 0, "ics": 0})
    >>> result["right"], result["concepts"]["the forward pass"]
    (['eps'], (1, 6))

    Introduced in notebook 00.
    """
    form(name)                                      # validates the name
    by_id = {q.id: q for q in QUESTIONS}
    unknown = sorted(set(choices) - set(by_id))
    if unknown:
        raise ValueError(f"choices holds unknown question ids {unknown}")
    right = [q.id for q in QUESTIONS if choices.get(q.id) == q.answer]
    concepts = {c: (sum(q.concept == c and q.id in right for q in QUESTIONS),
                    sum(q.concept == c for q in QUESTIONS)) for c in CONCEPTS}
    return {"right": right, "answered": [q.id for q in QUESTIONS if q.id in choices],
            "concepts": concepts}
