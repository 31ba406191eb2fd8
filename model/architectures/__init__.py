"""Model architectures: the Transformer and the RNN with their configs, decoder caches, cross-attention
memory, row selection over decoder state, and the training loss. Importing this loads torch."""

from model.architectures.contract import DecodingModel
from model.architectures.loss import label_smoothed_loss
from model.architectures.rnn import RNNConfig, RNNSeq2Seq
from model.architectures.row_selection import select_rows
from model.architectures.transformer import Transformer, TransformerConfig, sinusoidal_positions

__all__ = ["DecodingModel", "RNNConfig", "RNNSeq2Seq", "Transformer", "TransformerConfig", "label_smoothed_loss",
           "select_rows", "sinusoidal_positions"]
