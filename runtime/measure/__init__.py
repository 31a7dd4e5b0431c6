"""Measuring a model as a user would meet it (never needed on a device).

    evaluate  keystroke savings, top-k accuracy and perplexity on a text (``nextword eval``)
    ngram     a Kneser-Ney trigram baseline from the same tokenizer
    bench     speed, memory and cold start of model files and runs (``nextword bench``)
"""
