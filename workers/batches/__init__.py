"""Batches in the workers: planning (the input rewritten into one row group per chunk), chunks
(predicted and written once each, fenced by their attempt number), and the result (the parts
joined in order). Plain functions; the Celery tasks in workers/tasks.py call them."""
