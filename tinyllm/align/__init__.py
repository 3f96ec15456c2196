"""tinyllm.align: turning a pretrained GPT into an assistant (supervised fine-tuning, DPO)."""
from .dpo import dpo_loss

__all__ = ["dpo_loss"]
