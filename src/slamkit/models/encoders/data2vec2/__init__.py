"""data2vec 2.0 family: shared transformer blocks and the fairseq reader, EAT (audio) and emotion2vec (speech emotion)."""
