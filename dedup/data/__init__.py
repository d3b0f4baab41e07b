"""Shipped text set for the text demo (sentences.txt) and its paraphrase labels."""
