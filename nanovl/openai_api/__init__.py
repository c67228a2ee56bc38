"""OpenAI request bodies -> library calls and outputs -> OpenAI response bodies, shared by the
server (`nanovl serve`) and batch jobs (`nanovl batch`); no HTTP here, nothing imports upwards."""
