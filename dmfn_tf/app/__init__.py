"""`dmfn app`: a local web page to upload a photo, paint the hole with a brush and download the result.

The server (`dmfn_tf.app.server`) uses the standard library only and serves one page
(`static/index.html`, HTML + JavaScript canvas, no external resources), so it works offline and
adds no dependency. It binds to 127.0.0.1 by default.
"""
