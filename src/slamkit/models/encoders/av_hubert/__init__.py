"""AV-HuBERT: lip-reading (``av_hubert``) and audio-visual (``av_hubert_av``) encoders over 25 fps mouth crops.

:mod:`.encoder` holds the network and the official checkpoint reader, :mod:`.resnet` the visual
front end, :mod:`.fbank` the audio features, :mod:`.transformer` the fairseq-layout transformer.
"""
