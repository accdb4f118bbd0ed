"""The chapters' demonstrations: code that shows an idea on a toy, a table or a trained model
and decides no number of the study, so the study's code digest leaves it out (``NOT_DIGESTED``
in :mod:`cvae_tutorial.study`). One module per job, each named for it:

- :mod:`.elbo_sweeps`: the ELBO as q leaves the posterior along one coordinate (chapter 1);
- :mod:`.models_table`: the table of the prior ladder's runs (chapter 4);
- :mod:`.density_grid`: a 2-D grid to evaluate, integrate and contour a density on;
- :mod:`.toy_priors`: the four priors of the ladder fitted to 2-D codes (chapter 4);
- :mod:`.kl_sign`: training steps with the paper's KL sign or the correct one (chapter 4);
- :mod:`.samplers`: the flow prior's two samplers compared in latent space and by the attribute
  classifier, and decoded for chosen attribute sets (chapter 4);
- :mod:`.latent_control`: the shuffled-label control of latent Fréchet distances (chapter 6);
- :mod:`.toy_parameters`: the toy chapters' sizes and scales checked to be positive (chapters 1
  and 3);
- :mod:`.random_flow`: a flow far from the identity, its couplings' last layers made random
  (chapter 3);
- :mod:`.two_moons`: the two-moons density a flow is fitted to (chapter 3);
- :mod:`.sharpness`: the Laplacian energy of images, how sharp they are (chapter 2);
- :mod:`.run_setup`: the parameters of chapters 5–7 checked beyond their types, chapter 5's
  checkpoints found, or stand-ins trained;
- :mod:`.training_results`: chapter 5's table rows, verdicts, answer and Fig. 5's labels;
- :mod:`.evaluation_report`: chapter 6's tables, controls, curves, verdicts and key points;
- :mod:`.ladder_report`: chapter 6's tables and sentences for the prior-ladder study (what
  :mod:`cvae_tutorial.ladder` reads from it);
- :mod:`.editing_report`: chapter 7's edits, interpolations, temperature sweep and answer;
- :mod:`.explorer`: chapter 7's attribute explorer (its samples and live controls).

Figures are drawn by :mod:`cvae_tutorial.plotting` from what these functions return.
"""
