"""Tokenizers: SentencePiece (ours), Marian's two-vocabulary one, fairseq's multilingual one (M2M100/NLLB),
and the registry that rebuilds any of them from its files. No torch here: the CPU stages use these."""

from model.tokenizers.base import TokenizerContract
from model.tokenizers.m2m100 import FairseqMultilingualTokenizer, load_m2m100_tokenizer
from model.tokenizers.marian import MarianTokenizer, load_marian_tokenizer
from model.tokenizers.registry import load_tokenizer_dir, save_tokenizer, tokenizer_from_files
from model.tokenizers.sentencepiece import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer, train_sentencepiece

__all__ = ["BOS_ID", "EOS_ID", "PAD_ID", "UNK_ID", "FairseqMultilingualTokenizer", "MarianTokenizer", "Tokenizer",
           "TokenizerContract", "load_m2m100_tokenizer", "load_marian_tokenizer", "load_tokenizer_dir",
           "save_tokenizer",
           "tokenizer_from_files", "train_sentencepiece"]
