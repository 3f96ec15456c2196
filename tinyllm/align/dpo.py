"""Direct Preference Optimization (Rafailov et al. 2023): learn from pairs of answers, one preferred.

For a prompt x with a chosen answer y_w and a rejected one y_l, the implicit reward of an answer is
beta * (log pi_theta(y|x) - log pi_ref(y|x)), how much more likely the policy makes it than the frozen
reference model does. DPO raises the margin between the two rewards through

    logits = (log pi(y_w) - log pi(y_l)) - (log ref(y_w) - log ref(y_l))
    sigmoid:  loss = -(1 - eps) log sigmoid(beta * logits) - eps log sigmoid(-beta * logits)
              (eps = label_smoothing: "conservative DPO", for labels flipped with probability eps)
    ipo:      loss = (logits - 1 / (2 beta))^2   (Azar et al. 2023: a target margin instead of an
              ever-growing one)

The log-probabilities are sums over the answer's tokens only. When policy and reference agree,
logits = 0 and the sigmoid loss is log 2.
"""
from ..nn import functional as F

LOSS_TYPES = ("sigmoid", "ipo")


def dpo_loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps,
             beta=0.1, label_smoothing=0.0, loss_type="sigmoid"):
    """(losses, chosen_rewards, rejected_rewards), each of shape (batch,), in TRL's argument order.

    The rewards are detached: they are for logging (rewards/chosen, rewards/rejected, their margin and
    how often chosen beats rejected), not for the gradient.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"dpo_loss: loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if beta <= 0 or not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"dpo_loss: need beta > 0 and 0 <= label_smoothing < 0.5, got beta={beta}, "
                         f"label_smoothing={label_smoothing}")
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * logits) * (1.0 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    else:
        losses = (logits - 1.0 / (2.0 * beta)) ** 2
    chosen_rewards = (beta * (policy_chosen_logps - reference_chosen_logps)).detach()
    rejected_rewards = (beta * (policy_rejected_logps - reference_rejected_logps)).detach()
    return losses, chosen_rewards, rejected_rewards
