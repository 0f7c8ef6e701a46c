"""From clips to a searchable index: embed (reader, mapper, writer), drivers (sequential, Ray), FAISS builds."""
