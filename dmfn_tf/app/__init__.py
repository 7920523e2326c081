"""`dmfn app`: a local web page to upload a photo, paint the hole with a brush and download the result.

The server (`dmfn_tf.app.server`) uses the standard library only and serves one page
(`static/index.html`, HTML + JavaScript canvas, no external resources), so it works offline and
adds no dependency. It binds to 127.0.0.1 by default. Its parts, one per module: `body` (request
lengths, bounded reads, the in-flight byte budget), `origin` (`Host`/`Origin` against the bound
address), `decoding` (uploads and masks sized from their headers before decoding), `models` (the
models a page may choose, by label), `uploads` (the kept photo files, by random id, within a
byte budget) and `refusal` (the status and one-line, path-free message of every error).
"""
