"""Experiments the lessons run: each module measures one topic, for any chapter that needs it.

Notebooks contain no library code, yet they measure things that need a loop or two. Each helper
here does one such measurement, with the method written out in its docstring, and is tested.
- ``stability``   where gradient methods diverge, iterations to a tolerance, sign flips
- ``noise``       the stationary spread of SGD's iterates (∝ lr / batch size)
- ``geometry``    the loss along lines and Bézier curves between networks (mode connectivity)
- ``adaptivity``  effective per-coordinate learning rates; the bias of zero-initialised EMAs
- ``sparse``      logistic regression with rare features, and its exact optimum
- ``comparison``  fair optimizer comparisons (lr grid, several seeds, mean ± spread)
- ``memory``      the state memory an optimizer really holds
- ``sharpness``   the top Hessian eigenvalue and the Hessian trace
- ``convergence`` stopping criteria, gradient norms during training, SGD's O(1/√T) guarantee
- ``tuning``      update-to-weight ratios over a learning-rate sweep; grid vs random search
- ``momentum``    heavy ball and Nesterov per eigen-direction, worst-case tuning, Lessard's cycle
- ``regret``      online gradient descent's regret against the best fixed point in hindsight
- ``adam_steps``  Adam's uncorrected step, restarts after silence, re-adaptation, step vs SNR
- ``adam_scaling`` rotated quadratics, diagonal Newton, Hessian vs empirical Fisher
- ``weight_decay`` L2 vs decoupled decay: identities, per-coordinate decay, the lr × λ grid
- ``sign_methods`` Lion's update sizes, decay per step and step time; Lion vs lion-pytorch and
  vs AdamW on digits; sign descent and Signum; the cost of an LSTM optimizer
- ``amsgrad``     FTRL increments σ_t; Reddi et al.'s problem, failure region; AMSGrad conventions
- ``saddles``     saddle escape under noise ≈ H/B, flat-basin fractions, sharpness at matched loss
- ``rectification`` RAdam's ρ_t, switch step and rectifier; adaptive-lr variance; NAdam's μ_t
- ``schedules``   lr-scheduled runs on digits: snapshot ensembles, warmup, lr vs batch size
- ``lr_range``    the learning-rate range test and rules to pick a value from it
- ``league``, ``ftrl_proximal`` every optimizer, fair protocol, time, memory; L1 exact zeros

Import the module you need (``from course_lib.experiments.stability import bisect_threshold``);
importing this package imports none of them.
"""
