"""Back ends of the scripts in ``tools/`` (set-up of train/test runs, the
official-checkpoint converter, visualisation, dataset writers).

Nothing in mmitpn's runtime (models, engine, datasets, accel) imports this
package.
"""
