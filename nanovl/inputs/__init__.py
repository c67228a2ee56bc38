"""Host-side media ingestion: images, videos, audio -> tensors and metadata."""
