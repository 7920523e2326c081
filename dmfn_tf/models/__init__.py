"""The model parts: the generator and its dense multi-scale fusion block, the discriminator, the
frozen perceptual networks, the losses that tie them together, the layers they share (`layers`)
and their parameter summary (`summary`)."""
