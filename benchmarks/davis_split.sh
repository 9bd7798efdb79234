# The DAVIS 2016 split every weights recipe uses (sourced by benchmarks/train_*_weights.sh): test
# sequences never train and never choose; validation sequences choose; training sequences train.
DAVIS=${DAVIS:-../shared/data/davis2016}
TEST=car-shadow,dog,horsejump-high,kite-surf
VALIDATION=goat,parkour,scooter-black
TRAIN=breakdance,car-roundabout,cows,dance-twirl,drift-straight,motocross-jump,paragliding-launch,soapbox
APPEARANCE=${APPEARANCE:-${XDG_CACHE_HOME:-$HOME/.cache}/qmra/appearance}
