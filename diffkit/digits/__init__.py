"""The digits application: data, the embedded trained models, training and evaluation.

data         scikit-learn's 8x8 digits, split 1,500 train / 297 held out, in [-1, 1]
pretrained   the embedded class-conditional models by name ("digits": eps, "digits-flow": rectified flow)
train        training with EMA and exact resume (``diffkit train``); objectives: DDPM and flow matching
evaluate     Frechet distance and classifier accuracy of samples, ``sample_digits`` (with either guidance)
classifier   the shipped noise-conditional classifier log p(y | x_t), for classifier guidance
train_classifier  how it is trained (``scripts/train_digits_classifier.sh`` reproduces it bit for bit)
editing      img2img and inpainting of held-out digits (``diffkit edit``, ``diffkit inpaint``)

scikit-learn is needed for the data and the evaluation (the ``bench`` and ``dev`` extras).
"""
