"""hwgen: quantized neural networks to bit-exact iCE40/ECP5 hardware."""
